//! The page: inline CSS, the sections in order, every picture embedded as a base64 PNG; no
//! script and nothing fetched, so it opens from a USB stick.

use base64::Engine;

use super::{Inputs, Section};

/// `s` with HTML's special characters escaped.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Markdown paragraphs and pipe tables (what `table.md` holds) as HTML; a non-zero
/// `failures` cell is marked.
pub fn markdown(text: &str) -> String {
    let mut out = String::new();
    let mut table: Vec<Vec<String>> = Vec::new();
    let flush = |table: &mut Vec<Vec<String>>, out: &mut String| {
        if table.is_empty() {
            return;
        }
        let header = table.remove(0);
        let fail_col = header.iter().position(|h| h == "failures");
        out.push_str("<table><tr>");
        for h in &header {
            out.push_str(&format!("<th>{}</th>", escape(h)));
        }
        out.push_str("</tr>");
        for row in table
            .drain(..)
            .filter(|r| !r.iter().all(|c| c.chars().all(|ch| "-:".contains(ch))))
        {
            out.push_str("<tr>");
            for (n, cell) in row.iter().enumerate() {
                let failed = Some(n) == fail_col && cell.parse::<u64>().is_ok_and(|v| v > 0);
                let class = if failed { " class=\"fail\"" } else { "" };
                out.push_str(&format!("<td{class}>{}</td>", escape(cell)));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
    };
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('|') {
            let cells = t.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect();
            table.push(cells);
            continue;
        }
        flush(&mut table, &mut out);
        if let Some(h) = t.strip_prefix("# ") {
            out.push_str(&format!("<h3>{}</h3>", escape(h)));
        } else if !t.is_empty() {
            out.push_str(&format!("<p>{}</p>", escape(t)));
        }
    }
    flush(&mut table, &mut out);
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #bbb;padding:3px 6px;text-align:left}\
td.fail{background:#f6c9c0;font-weight:bold}figure{display:inline-block;margin:1em;vertical-align:top;max-width:100%}\
figure img{max-width:100%;border:1px solid #ddd}figcaption{max-width:720px;font-size:90%}\
pre{background:#f4f4f4;padding:1em;overflow:auto;font-size:80%}nav a{margin-right:1em}";

/// The whole page.
pub fn page(inputs: &Inputs, sections: &[Section], pictures: &str) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>delinea report: {}</title>\
         <style>{STYLE}</style></head><body><h1>delinea report</h1><p>{}</p><nav>",
        escape(&inputs.dir.display().to_string()),
        escape(&inputs.dir.display().to_string())
    );
    for s in sections {
        out.push_str(&format!("<a href=\"#{}\">{}</a>", s.id, escape(&s.title)));
    }
    out.push_str("</nav>\n");
    for s in sections {
        out.push_str(&format!(
            "<section id=\"{}\"><h2>{}</h2>{}\n",
            s.id,
            escape(&s.title),
            s.html
        ));
        if s.figures.is_empty() && s.html.is_empty() {
            out.push_str("<p>Nothing recorded for this section in these results.</p>");
        }
        for f in &s.figures {
            let data = base64::engine::general_purpose::STANDARD.encode(f.canvas.png());
            let points = f.points.map(|p| format!(" data-points=\"{p}\"")).unwrap_or_default();
            out.push_str(&format!(
                "<figure id=\"{name}\"><img src=\"data:image/png;base64,{data}\" alt=\"{cap}\" width=\"{w}\"{points}>\
                 <figcaption>{cap} <a href=\"{pictures}/{name}.png\">{name}.png</a></figcaption></figure>\n",
                name = super::file_stem(&f.name),
                cap = escape(&f.caption),
                w = f.canvas.width / f.density.max(1),
            ));
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}
