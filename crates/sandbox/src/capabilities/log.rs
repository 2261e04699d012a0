//! Guest logging: `nitejar:plugin/log`.
//!
//! Always allowed, but bounded: a line is truncated to [`MAX_LOG_LINE_BYTES`], a call keeps at
//! most [`MAX_LOG_LINES_PER_CALL`] lines (the rest are counted as dropped), and control
//! characters are escaped so a plugin cannot forge log lines or terminal sequences. Lines go to
//! tracing (target `plugin`) and into the call's receipt (`detail.logs`).

use crate::bindings::nitejar::plugin::log::{self, Level};
use crate::limits::{MAX_LOG_LINE_BYTES, MAX_LOG_LINES_PER_CALL};
use crate::store::HostState;

/// Log lines collected during one call.
#[derive(Debug, Default)]
pub struct LogState {
    /// Kept lines, already escaped, prefixed with their level.
    pub lines: Vec<String>,
    /// Lines dropped by the per-call cap.
    pub dropped: u32,
    /// Lines are not sent to tracing as they come, only kept (a webhook's attempt on the
    /// caller's thread, which may be run again: [`LogState::replay`] sends them if it stands).
    pub deferred: bool,
}

/// Whether `c` changes how text around it is shown without being visible itself: control
/// characters (`\n`, ESC, ...), bidirectional overrides and isolates (U+202A-U+202E,
/// U+2066-U+2069), zero-width and direction marks (U+200B-U+200F, U+2060, U+FEFF), and the
/// line and paragraph separators (U+2028, U+2029).
pub fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Escapes characters that could forge or hide text ([`is_deceptive`]) as `\u{..}` / `\n`, and
/// truncates to `max` bytes on a char boundary.
pub fn sanitize(message: &str, max: usize) -> String {
    let mut out = String::with_capacity(message.len().min(max));
    for c in message.chars() {
        let piece = if is_deceptive(c) {
            c.escape_default().to_string()
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

impl LogState {
    /// Records one line; returns the sanitized text when it was kept.
    pub fn record(&mut self, level: &str, message: &str) -> Option<String> {
        if self.lines.len() as u32 >= MAX_LOG_LINES_PER_CALL {
            self.dropped += 1;
            return None;
        }
        let line = sanitize(message, MAX_LOG_LINE_BYTES);
        self.lines.push(format!("{level}: {line}"));
        Some(line)
    }

    /// Sends the kept lines of a deferred call to tracing, as they would have gone one by one.
    pub fn replay(&self, plugin_id: &str) {
        for kept in &self.lines {
            let (level, line) = kept.split_once(": ").unwrap_or(("info", kept));
            trace(level, plugin_id, line);
        }
    }
}

/// Sends one kept line to tracing (target `plugin`) at its level.
fn trace(level: &str, pid: &str, line: &str) {
    match level {
        "trace" | "debug" => tracing::debug!(target: "plugin", plugin_id = pid, "{line}"),
        "warn" => tracing::warn!(target: "plugin", plugin_id = pid, "{line}"),
        "error" => tracing::error!(target: "plugin", plugin_id = pid, "{line}"),
        _ => tracing::info!(target: "plugin", plugin_id = pid, "{line}"),
    }
}

impl log::Host for HostState {
    fn write(&mut self, level: Level, message: String) {
        let name = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let Some(line) = self.caps.log.record(name, &message) else {
            return;
        };
        if !self.caps.log.deferred {
            trace(name, &self.caps.ctx.plugin_id, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_truncates() {
        assert_eq!(sanitize("a\nb\x1b[31m", 100), "a\\nb\\u{1b}[31m");
        let long = "é".repeat(10);
        let s = sanitize(&long, 7);
        assert!(s.len() <= 7 + '…'.len_utf8() && s.ends_with('…'), "{s}");
    }

    #[test]
    fn escapes_bidi_overrides_and_invisible_characters() {
        // "evil\u{202E}txt.exe" would show as "evilexe.txt"; zero-width joiners hide text.
        assert_eq!(
            sanitize("evil\u{202E}txt.exe \u{200B}\u{2066}x\u{FEFF}\u{2028}", 100),
            "evil\\u{202e}txt.exe \\u{200b}\\u{2066}x\\u{feff}\\u{2028}"
        );
        assert_eq!(sanitize("café 日本 ok", 100), "café 日本 ok");
    }

    #[test]
    fn caps_lines_per_call() {
        let mut st = LogState::default();
        for i in 0..(MAX_LOG_LINES_PER_CALL + 5) {
            st.record("info", &format!("{i}"));
        }
        assert_eq!(st.lines.len() as u32, MAX_LOG_LINES_PER_CALL);
        assert_eq!(st.dropped, 5);
    }
}
