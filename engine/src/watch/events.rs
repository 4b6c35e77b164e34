//! notify (debounced by notify-debouncer-full) turned into hints for the [`Tracker`]s. Only
//! creates, writes, closes after writing, renames and removes count: notify 8 also reports
//! opens and reads on Linux, and a watcher that reacted to them would trigger itself on its
//! own reads. A rescan flag (the kernel queue overflowed) means events were lost.
//!
//! [`Tracker`]: super::arrival::Tracker

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

use super::arrival::Hint;

/// Which watched folder an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// The inbox (scans).
    Inbox,
    /// The labels folder.
    Labels,
}

/// What the main loop hears from the watcher thread.
#[derive(Debug)]
pub enum Message {
    /// Something happened to `name` in `folder`.
    Hint(Folder, String, Hint),
    /// Something was removed or changed in a way that only a scan can tell.
    Changed,
    /// Events were lost: scan everything and trust only signatures.
    Rescan,
    /// A door's question (`delinea serve`).
    Ask(super::Ask),
}

/// `DELINEA_WATCH_FAULTS` (tests only): `overflow` turns every batch of events into the one
/// rescan flag a kernel queue overflow leaves; `lose-events` drops them all without a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Overflow,
    LoseEvents,
}

/// The running watcher; events stop when it is dropped.
pub type Watching = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Watches `folders` (non-recursively) and sends [`Message`]s to `tx`.
pub fn watch(folders: &[(Folder, PathBuf)], tx: Sender<Message>) -> Result<Watching, notify::Error> {
    let fault = match std::env::var("DELINEA_WATCH_FAULTS").as_deref() {
        Ok("overflow") => Fault::Overflow,
        Ok("lose-events") => Fault::LoseEvents,
        _ => Fault::None,
    };
    let roots: Vec<(Folder, PathBuf)> = folders.to_vec();
    let handler = move |result: DebounceEventResult| {
        let events = match result {
            Ok(events) => events,
            Err(_) => {
                let _ = tx.send(Message::Rescan);
                return;
            }
        };
        match fault {
            Fault::Overflow => {
                let _ = tx.send(Message::Rescan);
                return;
            }
            Fault::LoseEvents => return,
            Fault::None => {}
        }
        for e in events {
            if e.need_rescan() {
                let _ = tx.send(Message::Rescan);
                continue;
            }
            for m in messages(&roots, &e.event.kind, &e.event.paths) {
                let _ = tx.send(m);
            }
        }
    };
    let mut debouncer = new_debouncer(Duration::from_millis(100), None, handler)?;
    for (_, dir) in folders {
        debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(debouncer)
}

/// The messages one event makes (none for accesses other than a close after writing).
fn messages(roots: &[(Folder, PathBuf)], kind: &EventKind, paths: &[PathBuf]) -> Vec<Message> {
    let hint = match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Hint::Closed),
        EventKind::Access(_) => return Vec::new(),
        EventKind::Create(_) => Some(Hint::Writing),
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => Some(Hint::RenamedIn),
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => None,
        EventKind::Modify(_) => Some(Hint::Writing),
        EventKind::Any | EventKind::Other => None,
    };
    // A rename within the folder names both ends: the arrival is the last path.
    let path = match (kind, paths) {
        (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), [.., to]) => Some(to),
        (_, [first, ..]) => Some(first),
        _ => None,
    };
    let Some((folder, name)) = path.and_then(|p| locate(roots, p)) else {
        return Vec::new();
    };
    match hint {
        Some(h) => vec![Message::Hint(folder, name, h)],
        None => vec![Message::Changed],
    }
}

/// The watched folder `path` is directly in, and its name there.
fn locate(roots: &[(Folder, PathBuf)], path: &Path) -> Option<(Folder, String)> {
    roots.iter().find_map(|(folder, root)| {
        let rest = path.strip_prefix(root).ok()?;
        let first = rest.components().next()?;
        Some((*folder, first.as_os_str().to_string_lossy().into_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::CreateKind;

    #[test]
    fn opens_and_reads_are_dropped_and_renames_in_are_named_by_their_target() {
        let roots = vec![
            (Folder::Inbox, PathBuf::from("/in")),
            (Folder::Labels, PathBuf::from("/labels")),
        ];
        let p = |s: &str| vec![PathBuf::from(s)];
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(messages(&roots, &open, &p("/in/a.nii.gz")).is_empty());
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert!(messages(&roots, &read, &p("/in/a.nii.gz")).is_empty());
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(
            format!("{:?}", messages(&roots, &closed, &p("/labels/a.nii.gz"))),
            format!("{:?}", [Message::Hint(Folder::Labels, "a.nii.gz".into(), Hint::Closed)])
        );
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let paths = vec![PathBuf::from("/in/a.part"), PathBuf::from("/in/a.nii.gz")];
        assert_eq!(
            format!("{:?}", messages(&roots, &both, &paths)),
            format!(
                "{:?}",
                [Message::Hint(Folder::Inbox, "a.nii.gz".into(), Hint::RenamedIn)]
            )
        );
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(
            format!("{:?}", messages(&roots, &create, &p("/in/b.nii"))),
            format!("{:?}", [Message::Hint(Folder::Inbox, "b.nii".into(), Hint::Writing)])
        );
        assert!(messages(&roots, &create, &p("/elsewhere/b.nii")).is_empty());
    }
}
