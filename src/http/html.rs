//! Rendering: an HTML escape for every caller- or admin-supplied string, and the page frame
//! (banner with business hours and version, navigation, small inline CSS; no CDN: the one
//! script, for live calls, is served by ivr itself).

use std::fmt::Write as _;

/// `s` safe in HTML text and in double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#222}\
header{background:#1d3557;color:#fff;padding:.6em 1em;display:flex;gap:1.5em;align-items:center;flex-wrap:wrap}\
header a{color:#fff}header .hours{font-weight:600}header .ver{opacity:.7;margin-left:auto}\
main{padding:1em}table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}\
th{background:#f1f3f5}.overdue,.escalated{color:#b00020;font-weight:600}.acked{color:#2b8a3e}.waiting{color:#8a6d00}\
form.inline{display:inline}button{cursor:pointer}.err{color:#b00020}";

/// A whole page. `csrf` (for the logout form) is `None` on the login page.
pub fn page(title: &str, banner: &str, version: &str, csrf: Option<&str>, body: &str) -> String {
    page_refreshing(title, banner, version, csrf, body, None)
}

/// [`page`] that the browser reloads every `refresh_s` seconds when scripts are off (the page's
/// script keeps it current otherwise).
pub fn page_refreshing(
    title: &str,
    banner: &str,
    version: &str,
    csrf: Option<&str>,
    body: &str,
    refresh_s: Option<u32>,
) -> String {
    let mut out = String::new();
    let refresh = refresh_s
        .map(|s| format!("<noscript><meta http-equiv=\"refresh\" content=\"{s}\"></noscript>"))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} — ivr admin</title><style>{CSS}</style></head><body><header>\
         <strong>ivr admin</strong><span class=\"hours\" id=\"hours\">{banner}</span>",
        title = esc(title),
        banner = esc(banner),
    );
    if let Some(csrf) = csrf {
        let _ = write!(
            out,
            "<nav><a href=\"/calls\">Live calls</a> · <a href=\"/\">Voicemails</a> · <a href=\"/cdrs\">Calls</a> · <a href=\"/outbox\">Webhook outbox</a> · <a href=\"/staff\">Staff</a> · <a href=\"/flows\">Flows</a> · <a href=\"/reload\">Reload</a></nav>\
             <form class=\"inline\" method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Log out</button></form>",
            esc(csrf)
        );
    }
    let _ = write!(
        out,
        "<span class=\"ver\">ivr {}</span></header><main><h1>{}</h1>{body}</main></body></html>",
        esc(version),
        esc(title)
    );
    out
}

/// A CSRF-protected POST button.
pub fn post_button(action: &str, csrf: &str, label: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>{}</button></form>",
        esc(action),
        esc(csrf),
        esc(label)
    )
}

/// `at` on the line's wall clock (the business-hours zone), as staff read it: `Tue 2026-12-01
/// 18:45 EST`. Pages show times this way; the API keeps RFC 3339 UTC.
pub fn local_time(hours: &crate::hours::BusinessHours, at: jiff::Timestamp) -> String {
    at.to_zoned_datetime(hours.time_zone().clone())
        .strftime("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_on_the_line_s_clock() {
        let mut c = crate::config::Config::embedded().hours;
        c.timezone = "America/New_York".into();
        let hours = crate::hours::BusinessHours::from_config(&c).expect("hours");
        let at: jiff::Timestamp = "2026-12-01T23:45:49Z".parse().expect("time");
        assert_eq!(local_time(&hours, at), "Tue 2026-12-01 18:45 EST");
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        let p = page("T<", "open", "1", Some("c\"sr"), "<p>ok</p>");
        assert!(p.contains("T&lt;") && p.contains("c&quot;sr") && p.contains("<p>ok</p>"));
    }
}
