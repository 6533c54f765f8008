//! The suite's own detectors, checked against pages with live payloads: an inertness check
//! that cannot fail would prove nothing.

use crate::support::*;

fn catches(html: &str) -> bool {
    let html = html.to_string();
    std::panic::catch_unwind(move || assert_clean_html("sample", &html)).is_err()
}

#[test]
fn the_html_check_catches_live_payloads_and_passes_escaped_ones() {
    for live in [
        "<p><script>alert(1)</script></p>",
        "<input value=\"\"><img src=x onerror=alert(1)>\">",
        "<input value=''><svg onload=alert(1)>'>",
        "<textarea></textarea><script>alert(1)</script></textarea>",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<a href=\" JaVaScRiPt:alert(1)\">x</a>",
        "<a href=\"//evil.example/\">x</a>",
        "<form action=\"https://evil.example/\"></form>",
        "<p style=\"color:red\">x</p>",
        "<style>p{}</style>",
        "<script src=\"https://evil.example/x.js\"></script>",
        "<script src=\"/assets/ui.js\">alert(1)</script>",
        "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">",
        "<iframe src=\"/ui/\"></iframe>",
        "<div onmouseover='alert(1)'>x</div>",
        "<b/onclick=alert(1)>x</b>",
    ] {
        assert!(catches(live), "not caught: {live}");
    }
    for inert in [
        "<input value=\"&#34;&#62;&#60;img src=x onerror=alert(1)&#62;\">",
        "<input value=\"&#39;&#62;&#60;svg onload=alert(1)&#62;\">",
        "<textarea>&#60;/textarea&#62;&#60;script&#62;alert(1)&#60;/script&#62;</textarea>",
        "<p>&#60;script&#62;alert(1)&#60;/script&#62;</p>",
        "<input value=\"javascript:alert(1)\">",
        "<a href=\"/ui/users\">x</a><script src=\"/assets/ui.js?v=1\" defer></script>",
        "<p>x onload=y</p>",
    ] {
        assert!(!catches(inert), "false alarm: {inert}");
    }
}

#[test]
fn the_form_reader_decodes_values_and_textareas() {
    let page = Page {
        status: reqwest::StatusCode::OK,
        headers: Default::default(),
        text: "<form action=\"/ui/x\" id=\"f\"><input type=\"hidden\" name=\"csrf\" value=\"t\">\
               <input name=\"a\" value=\"&#60;b&#62;\"><textarea name=\"t\">\n&#60;/textarea&#62;\n2</textarea>\
               </form><form id=\"g\"><input name=\"z\" value=\"1\"></form>"
            .into(),
    };
    let (action, fields) = page.form(Some("f"));
    assert_eq!(action, "/ui/x");
    assert_eq!(
        fields,
        [
            ("csrf".to_string(), "t".to_string()),
            ("a".into(), "<b>".into()),
            ("t".into(), "</textarea>\n2".into()),
        ]
    );
    assert_eq!(page.csrf().as_deref(), Some("t"));
    assert_eq!(page.input(Some("g"), "z").as_deref(), Some("1"));
}
