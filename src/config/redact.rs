//! Hiding secrets in what `check-config` prints (and in configuration error messages): a URL's
//! userinfo password, and the values of query parameters whose names say they carry a credential.
//! The agent itself always works with the real values; only printed text is redacted.

use std::borrow::Cow;

use super::Config;

/// What a redacted secret is printed as.
pub const REDACTED: &str = "***";

/// Query parameter names (lowercase, matched as substrings) whose values are treated as secrets:
/// VictoriaMetrics' `authKey`, and the usual `token`, `password`, `secret`, `signature`, … .
const SECRET_PARAMS: [&str; 7] = ["key", "token", "pass", "secret", "auth", "sig", "cred"];

/// `url` with the password of its userinfo (`user:PASS@`) and the values of secret-bearing query
/// parameters replaced by [`REDACTED`]. Works on any string (also one that is not a valid URL,
/// for error messages); text without a secret comes back borrowed and unchanged.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(url);
    };
    let (head, rest) = url.split_at(scheme_end);
    let (rest, fragment) = match rest.find('#') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(auth_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    // The last `@` ends the userinfo (as `net::Url` reads it); its first `:` ends the user.
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(REDACTED);
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    match target.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, value)) if is_secret_param(name) && !value.is_empty() => {
                        out.push_str(name);
                        out.push('=');
                        out.push_str(REDACTED);
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(target),
    }
    out.push_str(fragment);
    if out == url {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(out)
    }
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

impl Config {
    /// [`Config::to_toml`] with every secret replaced by [`REDACTED`] (what `check-config`
    /// prints). Equal to `to_toml` when the configuration holds no secret; otherwise reading it
    /// back gives `***` where the secrets were. The token itself is never in the configuration
    /// (only `remote.token_file`, its path).
    pub fn to_toml_redacted(&self) -> String {
        let mut c = self.clone();
        if let Some(remote) = c.remote.as_mut() {
            remote.url = redact_url(&remote.url).into_owned();
            // Tenant and API-key headers: the names are shown, never the values.
            remote.headers = remote.headers.redacted();
        }
        if let Some(url) = c.monitoring.clock_skew_url.as_mut() {
            *url = redact_url(url).into_owned();
        }
        c.to_toml()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords_and_secret_params() {
        let cases = [
            (
                "http://vm:s3cr%40t@host:8428/api/v1/import",
                "http://vm:***@host:8428/api/v1/import",
            ),
            // The last `@` ends the userinfo: a raw `@` in the password is hidden too.
            ("https://u:p@ss@host/x", "https://u:***@host/x"),
            ("http://user@host/", "http://user@host/"),
            (
                "http://host/api/v1/import?authKey=abc&extra_label=site%3Dx&Token=t#frag",
                "http://host/api/v1/import?authKey=***&extra_label=site%3Dx&Token=***#frag",
            ),
            (
                "http://u:p@host?password=x",
                "http://u:***@host?password=***",
            ),
            (
                "http://host:8428/api/v1/import",
                "http://host:8428/api/v1/import",
            ),
            ("not a url", "not a url"),
        ];
        for (given, want) in cases {
            assert_eq!(redact_url(given), want, "{given}");
        }
        assert!(matches!(redact_url("http://host/x?a=1"), Cow::Borrowed(_)));
    }

    #[test]
    fn check_config_output_has_no_secret() {
        let text = "[remote]\nurl = \"http://agent:hunter2@vm:8428/api/v1/import?authKey=k3y\"\n";
        let config = Config::from_toml_str(text).unwrap();
        let printed = config.to_toml_redacted();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("k3y"), "{printed}");
        assert!(
            printed.contains("url = \"http://agent:***@vm:8428/api/v1/import?authKey=***\""),
            "{printed}"
        );
        // The derived clock-skew URL carries the userinfo too.
        assert!(
            printed.contains("clock_skew_url = \"http://agent:***@vm:8428/health\""),
            "{printed}"
        );
        // The real values are untouched (the uploader sends them; a reload compares them).
        assert!(config.to_toml().contains("hunter2"));
        let plain = Config::default();
        assert_eq!(plain.to_toml_redacted(), plain.to_toml());
    }
}
