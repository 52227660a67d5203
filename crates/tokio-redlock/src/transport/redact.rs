//! Secrets in member URLs: which query parameters may hold one, how a URL is shown with its
//! passwords replaced by `***`, and how an error text is scrubbed of them.

/// Whether a URL query parameter may carry a secret: `pass=` on unix-socket URLs,
/// `sentinel_password=`, and anything alike (`sentinel_pasword`, `pwd`, `secret`, `token`),
/// so that a misspelt parameter is redacted too. `name` is matched percent-decoded.
pub(crate) fn is_secret_param(name: &str) -> bool {
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    [
        "pass", "pas", "pwd", "word", "secret", "token", "key", "auth", "cred",
    ]
    .iter()
    .any(|word| name.contains(word))
        || name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|part| part == "pw" || part == "pw2")
}

/// Replaces the passwords of a member URL by `***`. The URL is taken apart as the builder
/// takes it ([`MemberUrl`](super::member::MemberUrl): credentials first), so what is shown
/// is what is used. A string that does not parse is cut to its scheme when it has one (any
/// other part may be a password), and shown only when it holds nothing that could be a
/// secret otherwise.
pub(crate) fn redact_url(raw: &str) -> String {
    if let Ok(member) = super::member::MemberUrl::parse(raw) {
        return member.shown;
    }
    let suspicious = raw.contains("://")
        || raw.contains(['@', '#', '%', '?', '&', '=', ':'])
        || raw
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(is_secret_param);
    if suspicious {
        super::member::unparsed_url_shown(raw)
    } else {
        raw.to_owned()
    }
}

/// Replaces every secret in `text` by `***`.
/// Longer secrets go first, so that one that contains another is replaced whole.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
        .into_iter()
        .fold(text.to_owned(), |t, s| t.replace(s.as_str(), "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_are_redacted() {
        assert_eq!(
            redact_url("redis+sentinel://u:pw@s1:1,s2:2/m?sentinel_password=sp"),
            "redis+sentinel://u:***@s1:1,s2:2/m?sentinel_password=***"
        );
        for raw in [
            "redis+sentinel://u:US3RPW@s1:1/m?sentinel_password=S3CR3T",
            // Unknown or misspelt parameters, encoded names, `@` and `#` in values.
            "redis+sentinel://u:US3RPW@s1:1,s2:2/m?sentinel_password=S3CR3T&x=1",
            "redis+sentinel://s1:1,s2:2/m?sentinel%5Fpassword=S3CR3T",
            "redis+sentinel://s1:1,s2:2/m?sentinel_password=top@S3CR3T",
            "redis+sentinel://s1:1,s2:2/m?sentinel_pasword=S3CR3T",
            "redis+sentinel://s1:1,s2:2/m?sentinelPassword=S3CR3T",
            "redis+sentinel://s1:1/m?sentinel_pw=S3CR3T",
            "redis+sentinel://s1:1/m?sentinel_pasword=S3CR3T",
            "redis+unix:///r.sock?pass=top#S3CR3T",
            "redis+sentinel://s1:1/m?sentinel_password=top#S3CR3T",
            "redis://u:US3RPW@h:1/#S3CR3T",
        ] {
            let shown = redact_url(raw);
            assert!(
                !shown.contains("S3CR3T") && !shown.contains("US3RPW"),
                "{raw} shown as {shown}"
            );
        }
    }

    #[test]
    fn redaction_hides_passwords() {
        assert_eq!(
            redact_url("redis://user:s3cret@10.0.0.1:6379/0"),
            "redis://user:***@10.0.0.1:6379/0"
        );
        assert_eq!(redact_url("redis://:s3cret@host"), "redis://:***@host");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        let bad = redact_url("redis://u:s3cr@t@[bad");
        assert!(!bad.contains("s3cr"), "{bad}");
        assert!(!redact_url("u:pw@nohost").contains("pw"));
        let unix = redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2");
        assert!(!unix.contains("hunter2") && unix.contains("db=1"), "{unix}");
        assert!(!redact_url("unix:///tmp/r.sock?password=hunter2").contains("hunter2"));
    }
}
