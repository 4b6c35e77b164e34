//! Progress on stderr: an indicatif bar when stderr is a terminal, plain lines when it is not
//! (logs, pipes, CI: a bar would fill them with redraws), nothing with `--quiet`.
//!
//! The library draws nothing: training reports [`Event`]s to a callback, synthesis and
//! prediction report one tick per case. This module turns those reports into bars or lines.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

use delinea::train::Event;
use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing (`--quiet`, or a command printing JSON).
    Quiet,
    /// Plain lines, for logs.
    Lines,
    /// A progress bar redrawn in place.
    Bar,
    /// Every training event as one JSON line, for a supervising program (`delinea serve`).
    Json,
}

impl Mode {
    /// `Quiet` when `quiet`, else `Bar` when stderr is a terminal, else `Lines`.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// A bar of `len` steps with `template`'s layout (the template is a constant: a bad one would
/// be a bug here, and falls back to indicatif's default style).
fn bar(len: usize, template: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len as u64).with_style(style)
}

/// Training progress from the trainer's [`Event`]s: a bar with the iteration, loss, learning
/// rate, last validation DSC, rate and ETA; or, in logs, one line every `every` iterations and
/// one per validation (the lines `delinea train` always printed).
pub struct Training {
    mode: Mode,
    every: usize,
    bar: Option<ProgressBar>,
    last_dsc: Option<f64>,
}

impl Training {
    /// Progress shown as `mode`; in lines, a step line every `every` iterations (0: none).
    pub fn new(mode: Mode, every: usize) -> Training {
        Training {
            mode,
            every,
            bar: None,
            last_dsc: None,
        }
    }

    /// Shows `e`.
    pub fn on_event(&mut self, e: &Event) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Lines => print_event(e, self.every),
            Mode::Json => eprintln!("{}", serde_json::to_string(e).unwrap_or_default()),
            Mode::Bar => self.draw(e),
        }
    }

    fn draw(&mut self, e: &Event) {
        match e {
            Event::Step {
                iteration,
                iterations,
                loss,
                lr,
                seconds,
                ..
            } => {
                let bar = self.bar.get_or_insert_with(|| {
                    bar(
                        *iterations,
                        "{elapsed_precise} [{bar:30}] {pos}/{len} it  {msg}  ETA {eta}",
                    )
                });
                let dsc = self.last_dsc.map_or("-".into(), |d| format!("{d:.4}"));
                let rate = *iteration as f64 / seconds.max(1e-9);
                bar.set_message(format!("loss {loss:.4}  lr {lr:.2e}  val DSC {dsc}  {rate:.2} it/s"));
                bar.set_position(*iteration as u64);
            }
            Event::Validation { median_dsc, .. } => {
                self.last_dsc = Some(*median_dsc);
                match &self.bar {
                    Some(bar) => bar.println(event_line(e)),
                    None => eprintln!("{}", event_line(e)),
                }
            }
        }
    }

    /// Leaves the finished bar on screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// The plain line of a training event: a step every `every` iterations (0: none) and the last,
/// and every validation.
pub(super) fn print_event(e: &Event, every: usize) {
    print_labelled_event("", e, every);
}

/// [`print_event`] with `label` before the line (which run it belongs to, when several run
/// side by side).
pub(super) fn print_labelled_event(label: &str, e: &Event, every: usize) {
    let show = match e {
        Event::Step {
            iteration, iterations, ..
        } => every > 0 && (iteration % every == 0 || iteration == iterations),
        Event::Validation { .. } => true,
    };
    if show {
        eprintln!("{label}{}", event_line(e));
    }
}

fn event_line(e: &Event) -> String {
    match e {
        Event::Step {
            iteration,
            iterations,
            loss,
            lr,
            seconds,
            ..
        } => format!(
            "iter {iteration:>6}/{iterations}  loss {loss:.4}  lr {lr:.5}  {:.2} it/s  {seconds:.1} s",
            *iteration as f64 / seconds.max(1e-9)
        ),
        Event::Validation {
            iteration,
            median_dsc,
            best,
            seconds,
            ..
        } => format!(
            "iter {iteration:>6}  validation median DSC {median_dsc:.4}{}  {seconds:.1} s",
            if *best { "  (best, saved)" } else { "" }
        ),
    }
}

/// Progress over a known number of items (cases, volumes) ticked from any thread: a bar, or in
/// logs a line at every tenth of the way and at the end.
pub struct Items {
    mode: Mode,
    what: &'static str,
    total: usize,
    done: AtomicUsize,
    bar: Option<ProgressBar>,
}

impl Items {
    /// `total` items called `what` ("cases", "volumes"), shown as `mode`.
    pub fn new(mode: Mode, total: usize, what: &'static str) -> Items {
        let bar = (mode == Mode::Bar).then(|| {
            bar(
                total,
                &format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what}  ETA {{eta}}  {{msg}}"),
            )
        });
        Items {
            mode,
            what,
            total,
            done: AtomicUsize::new(0),
            bar,
        }
    }

    /// One more item done; `name` (may be empty) says which.
    pub fn tick(&self, name: &str) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.set_message(name.to_string());
                bar.inc(1);
            }
            (None, Mode::Lines) if n == self.total || n.is_multiple_of(self.total.div_ceil(10).max(1)) => {
                eprintln!("{n}/{} {}", self.total, self.what);
            }
            _ => {}
        }
    }

    /// Clears the bar (the command prints its own summary). Call it before printing anything
    /// else: clearing later would move the cursor over other output.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.as_ref().filter(|b| !b.is_finished()) {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Items {
    /// Clears a bar left running by an early return (an error), before the error is printed.
    fn drop(&mut self) {
        self.finish();
    }
}
