//! The two HTML pages of the authorization endpoint: sign-in-and-consent, and the error page
//! shown when the client or redirect URI cannot be trusted (RFC 6749 §4.1.2.1: then the user
//! is told, never redirected). Self-contained: no scripts, no external assets.

use crate::config::DevUser;

/// What the consent page shows about the pending request.
pub(crate) struct Consent<'a> {
    pub transaction: &'a str,
    pub client: &'a str,
    pub redirect_host: &'a str,
    pub resource: &'a str,
    /// `None`: no `scope` parameter (the chosen user's allowed scopes are granted).
    pub scopes: Option<&'a [String]>,
    pub users: &'a [DevUser],
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;\
padding:0 1em;color:#222}.dev{background:#b00020;color:#fff;padding:.6em 1em;font-weight:bold}\
fieldset{margin:1em 0}label{display:block;margin:.3em 0}code{background:#eee;padding:0 .2em}\
button{margin-right:1em;padding:.4em 1.2em}";

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
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

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n\
         <p class=\"dev\">DEVELOPMENT ONLY: this is gatehouse-dev-issuer. Demo users sign in \
         without a password. Never use it in production.</p>\n"
    )
}

pub(crate) const TITLE: &str = "Sign in to the Gatehouse development authorization server";

pub(crate) fn consent(c: &Consent<'_>) -> String {
    let mut html = head(TITLE);
    html.push_str(&format!("<h1>{TITLE}</h1>\n"));
    html.push_str(&format!(
        "<p><strong>{}</strong> asks for access. After your decision you return to \
         <code>{}</code>.</p>\n",
        escape(c.client),
        escape(c.redirect_host)
    ));
    html.push_str(&format!(
        "<p>Resource: <code>{}</code></p>\n",
        escape(c.resource)
    ));
    match c.scopes {
        Some(scopes) => {
            html.push_str("<p>Requested scopes:</p><ul>");
            for s in scopes {
                html.push_str(&format!("<li><code>{}</code></li>", escape(s)));
            }
            html.push_str("</ul>\n");
        }
        None => html.push_str(
            "<p>No scopes named: the client gets every scope the chosen user may grant.</p>\n",
        ),
    }
    html.push_str(
        "<form method=\"post\" action=\"/authorize\">\n<fieldset><legend>Sign in as</legend>\n",
    );
    html.push_str(&format!(
        "<input type=\"hidden\" name=\"transaction\" value=\"{}\">\n",
        escape(c.transaction)
    ));
    for (i, u) in c.users.iter().enumerate() {
        let tenant = u
            .tenant
            .as_deref()
            .map(|t| format!(" (tenant {})", escape(t)))
            .unwrap_or_default();
        let scopes = if u.allowed_scopes.is_empty() {
            "no scopes".to_owned()
        } else {
            u.allowed_scopes
                .iter()
                .map(|s| escape(s))
                .collect::<Vec<_>>()
                .join(" ")
        };
        html.push_str(&format!(
            "<label><input type=\"radio\" name=\"user\" value=\"{name}\"{checked} required> \
             <strong>{name}</strong>{tenant} — may grant: <code>{scopes}</code></label>\n",
            name = escape(&u.name),
            checked = if i == 0 { " checked" } else { "" },
        ));
    }
    html.push_str(
        "</fieldset>\n<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>\n\
         </body></html>\n",
    );
    html
}

pub(crate) fn error(message: &str) -> String {
    let mut html = head("Authorization request refused");
    html.push_str(&format!(
        "<h1>Authorization request refused</h1>\n<p>{}</p>\n<p>You were not sent back to the \
         application because it could not be verified where to send you.</p>\n</body></html>\n",
        escape(message)
    ));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        let users = [DevUser::new("<b>", ["a\"b"]).with_tenant("t&t")];
        let scopes = ["<script>".to_owned()];
        let html = consent(&Consent {
            transaction: "\"x",
            client: "<img src=x>",
            redirect_host: "h<",
            resource: "r'>",
            scopes: Some(&scopes),
            users: &users,
        });
        for raw in ["<b>", "<script>", "<img", "\"x", "h<", "r'>", "t&t", "a\"b"] {
            assert!(!html.contains(raw), "{raw} unescaped in {html}");
        }
        assert!(html.contains("&lt;img src=x&gt;"));
        assert!(error("<x>").contains("&lt;x&gt;"));
    }
}
