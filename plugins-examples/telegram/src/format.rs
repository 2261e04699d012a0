//! Agent Markdown to Telegram's HTML subset, and splitting long replies.
//!
//! Telegram's `parse_mode: "HTML"` accepts only `b i u s code pre a blockquote` (and a few
//! more) and rejects the whole message on anything else, so the converter emits only those,
//! escapes every text node, and drops links whose scheme Telegram would refuse. Headings become
//! bold lines, list items get `•` or their number. When Telegram still refuses the HTML, the
//! caller resends the original text without a parse mode (see `post_response`).

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// Telegram's limit is 4096 characters per message; leave room for markup expansion.
pub const MAX_CHUNK_CHARS: usize = 3500;

/// Escapes text for Telegram HTML (text nodes and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Link schemes Telegram accepts in `<a href>`.
fn link_allowed(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    ["http://", "https://", "tg://", "mailto:"]
        .iter()
        .any(|p| lower.starts_with(p))
}

fn trim_trailing_newlines(out: &mut String) {
    while out.ends_with('\n') || out.ends_with(' ') {
        out.pop();
    }
}

fn ensure_line_start(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Converts Markdown (CommonMark + strikethrough) to Telegram HTML.
pub fn to_telegram_html(markdown: &str) -> String {
    let mut out = String::new();
    // Per open list: the next number of an ordered list, `None` for bullets.
    let mut lists: Vec<Option<u64>> = Vec::new();
    // Per open link: whether an `<a>` was emitted (so the end tag matches).
    let mut links: Vec<bool> = Vec::new();
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Heading { .. } => {
                    ensure_line_start(&mut out);
                    out.push_str("<b>");
                }
                Tag::BlockQuote(_) => {
                    ensure_line_start(&mut out);
                    out.push_str("<blockquote>");
                }
                Tag::CodeBlock(kind) => {
                    ensure_line_start(&mut out);
                    match kind {
                        CodeBlockKind::Fenced(lang) if !lang.trim().is_empty() => {
                            let lang = lang.split_whitespace().next().unwrap_or("");
                            out.push_str(&format!(
                                "<pre><code class=\"language-{}\">",
                                escape(lang)
                            ));
                        }
                        _ => out.push_str("<pre><code>"),
                    }
                }
                Tag::List(start) => {
                    ensure_line_start(&mut out);
                    lists.push(start);
                }
                Tag::Item => {
                    ensure_line_start(&mut out);
                    out.push_str(&"  ".repeat(lists.len().saturating_sub(1)));
                    match lists.last_mut() {
                        Some(Some(n)) => {
                            out.push_str(&format!("{n}. "));
                            *n += 1;
                        }
                        _ => out.push_str("• "),
                    }
                }
                Tag::Emphasis => out.push_str("<i>"),
                Tag::Strong => out.push_str("<b>"),
                Tag::Strikethrough => out.push_str("<s>"),
                Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                    let ok = link_allowed(&dest_url);
                    if ok {
                        out.push_str(&format!("<a href=\"{}\">", escape(&dest_url)));
                    }
                    links.push(ok);
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Paragraph => out.push_str(if lists.is_empty() { "\n\n" } else { "\n" }),
                TagEnd::Heading(_) => out.push_str("</b>\n\n"),
                TagEnd::BlockQuote(_) => {
                    trim_trailing_newlines(&mut out);
                    out.push_str("</blockquote>\n\n");
                }
                TagEnd::CodeBlock => {
                    trim_trailing_newlines(&mut out);
                    out.push_str("</code></pre>\n\n");
                }
                TagEnd::List(_) => {
                    lists.pop();
                    if lists.is_empty() {
                        trim_trailing_newlines(&mut out);
                        out.push_str("\n\n");
                    }
                }
                TagEnd::Item => ensure_line_start(&mut out),
                TagEnd::Emphasis => out.push_str("</i>"),
                TagEnd::Strong => out.push_str("</b>"),
                TagEnd::Strikethrough => out.push_str("</s>"),
                TagEnd::Link | TagEnd::Image if links.pop() == Some(true) => out.push_str("</a>"),
                _ => {}
            },
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => {
                out.push_str(&escape(&text))
            }
            Event::Code(code) => out.push_str(&format!("<code>{}</code>", escape(&code))),
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::Rule => {
                ensure_line_start(&mut out);
                out.push_str("──────────\n\n");
            }
            Event::TaskListMarker(done) => out.push_str(if done { "☑ " } else { "☐ " }),
            _ => {}
        }
    }
    trim_trailing_newlines(&mut out);
    out
}

/// Splits `text` into pieces of at most [`MAX_CHUNK_CHARS`] characters, at paragraph breaks
/// outside code fences where possible, else at line breaks, else anywhere.
pub fn chunks(text: &str) -> Vec<String> {
    let text = text.trim();
    if text.chars().count() <= MAX_CHUNK_CHARS {
        return vec![text.to_string()];
    }
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_fence = false;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        let boundary = !in_fence && line.trim().is_empty();
        if current.chars().count() + line.chars().count() > MAX_CHUNK_CHARS && !current.is_empty() {
            out.push(std::mem::take(&mut current).trim_end().to_string());
        }
        if line.chars().count() > MAX_CHUNK_CHARS {
            let chars: Vec<char> = line.chars().collect();
            for piece in chars.chunks(MAX_CHUNK_CHARS) {
                out.push(piece.iter().collect());
            }
            continue;
        }
        current.push_str(line);
        if boundary && current.chars().count() > MAX_CHUNK_CHARS / 2 {
            out.push(std::mem::take(&mut current).trim_end().to_string());
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim_end().to_string());
    }
    out.retain(|c| !c.trim().is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_markup_and_escaping() {
        assert_eq!(
            to_telegram_html("**bold** and *it* and `a<b>` & ~~gone~~"),
            "<b>bold</b> and <i>it</i> and <code>a&lt;b&gt;</code> &amp; <s>gone</s>"
        );
        assert_eq!(to_telegram_html("x < y > z"), "x &lt; y &gt; z");
        // Raw HTML from the model is text, never markup.
        assert_eq!(
            to_telegram_html("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(to_telegram_html("@nitejar_bot hi"), "@nitejar_bot hi");
    }

    #[test]
    fn blocks() {
        assert_eq!(
            to_telegram_html("# Title\n\npara one\n\n- a\n- b\n\n1. x\n2. y"),
            "<b>Title</b>\n\npara one\n\n• a\n• b\n\n1. x\n2. y"
        );
        assert_eq!(
            to_telegram_html("```rust\nfn main() {}\n```"),
            "<pre><code class=\"language-rust\">fn main() {}</code></pre>"
        );
        assert_eq!(
            to_telegram_html("> quoted"),
            "<blockquote>quoted</blockquote>"
        );
    }

    #[test]
    fn links_only_with_safe_schemes() {
        assert_eq!(
            to_telegram_html("[docs](https://example.com/?a=1&b=\"2\")"),
            "<a href=\"https://example.com/?a=1&amp;b=&quot;2&quot;\">docs</a>"
        );
        assert_eq!(to_telegram_html("[x](javascript:alert(1))"), "x");
    }

    #[test]
    fn chunking_respects_the_limit_and_keeps_everything() {
        let para = "word ".repeat(300);
        let text = [para.trim(); 8].join("\n\n");
        let parts = chunks(&text);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_CHUNK_CHARS));
        let words: usize = parts.iter().map(|p| p.split_whitespace().count()).sum();
        assert_eq!(words, 300 * 8);
        assert_eq!(chunks("short"), vec!["short".to_string()]);
        let long_line = "x".repeat(MAX_CHUNK_CHARS * 2 + 5);
        let parts = chunks(&long_line);
        assert_eq!(parts.len(), 3);
    }
}
