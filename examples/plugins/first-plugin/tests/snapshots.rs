use delinea_plugin_api::serde_json::json;
use delinea_plugin_api::testing::TestPool;
use first_plugin::MostUncertain;

#[test]
fn the_most_uncertain_first() {
    let pool = TestPool::seeded(3, 4, 5); // 4 cases × 5 slices
    let picks = pool.run::<MostUncertain>(5, 0, &json!({})).unwrap();
    insta::assert_json_snapshot!(pool.snapshot(&picks));
}
