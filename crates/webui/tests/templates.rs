//! The templates obey the Content-Security-Policy by construction: no inline script, no inline
//! style, no event-handler attributes, no `|safe` escape hatch, no external resources.
#![allow(clippy::unwrap_used, clippy::expect_used)] // unwraps are assertions here

use std::path::Path;

fn templates() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10, "templates not found");
    out
}

#[test]
fn no_inline_script_or_style() {
    for (name, html) in templates() {
        let lower = html.to_ascii_lowercase();
        for (i, _) in lower.match_indices("<script") {
            let tag = &lower[i..lower[i..].find('>').map_or(lower.len(), |e| i + e)];
            assert!(tag.contains(" src="), "{name}: inline <script>");
        }
        assert!(!lower.contains("<style"), "{name}: <style> element");
        assert!(!lower.contains(" style="), "{name}: style attribute");
        assert!(!lower.contains("javascript:"), "{name}: javascript: URL");
    }
}

#[test]
fn no_event_handler_attributes() {
    for (name, html) in templates() {
        let lower = html.to_ascii_lowercase();
        for (i, _) in lower.match_indices(" on") {
            let rest = &lower[i + 3..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            assert!(
                !rest[word.len()..].starts_with('='),
                "{name}: event handler attribute on{word}="
            );
        }
    }
}

#[test]
fn nothing_bypasses_escaping_or_loads_from_elsewhere() {
    for (name, html) in templates() {
        assert!(!html.contains("|safe"), "{name}: |safe disables escaping");
        assert!(!html.contains("escape(\"none\")"), "{name}: escaping off");
        assert!(!html.contains("http://"), "{name}: plain-HTTP resource");
        assert!(!html.contains("https://"), "{name}: external resource");
    }
}

#[test]
fn every_form_that_posts_carries_the_csrf_token() {
    for (name, html) in templates() {
        for form in html.split("<form").skip(1) {
            let form = form.split("</form>").next().unwrap();
            if form.contains("method=\"post\"") {
                assert!(
                    form.contains("name=\"csrf\" value=\"{{ layout.csrf }}\""),
                    "{name}: a POST form without the CSRF token"
                );
            }
        }
    }
}
