//! serde's and toml's messages for a scenario file, in the words of the file
//! and with the fix: "invalid type: string \"twenty\", expected u32" means
//! nothing to someone who wrote `count = "twenty"`.

/// The message to show and the fix, for a parse error at `span` of `text`.
pub fn explain(
    message: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
) -> (String, Option<String>) {
    let key = span.as_ref().and_then(|s| key_at(text, s.start));
    let key_or = |fallback: &str| key.clone().unwrap_or_else(|| fallback.to_owned());

    if message.starts_with("unknown field") {
        return (
            message.into(),
            Some("remove the key or correct its spelling; the keys this section accepts are listed above".into()),
        );
    }
    if message.starts_with("missing field `users`") {
        return (
            message.into(),
            Some("add a [users] section with at least `count = N`".into()),
        );
    }
    if let Some(field) = between(message, "missing field `", "`") {
        return (
            format!("missing key `{field}`"),
            Some(format!(
                "add `{field} = ...` to this section (README, Scenario files, lists every key)"
            )),
        );
    }
    if message.starts_with("unknown variant") {
        return (
            message.into(),
            Some("use one of the values listed above".into()),
        );
    }
    if message.starts_with("duplicate key") {
        let what = span
            .as_ref()
            .and_then(|s| word_at(text, s.start))
            .map(|w| format!("`{w}` is defined twice"))
            .unwrap_or_else(|| "a key or section is defined twice".into());
        return (
            what,
            Some("keep one: a section or key may appear only once in a file (an array of tables is written [[name]])".into()),
        );
    }
    if message.starts_with("invalid basic string") || message.starts_with("invalid literal string")
    {
        return (
            "a string is not closed".into(),
            Some("end the string with a matching quote on the same line".into()),
        );
    }
    if let Some(expected) = message.split(", expected ").nth(1) {
        let number = number_kind(expected);
        if let Some(found) = between(message, "invalid type: string ", ", expected")
            && let Some(number) = number
        {
            return (
                format!("expected {number}, found the string {found}"),
                Some(format!(
                    "write the number without quotes, e.g. {} = 20",
                    key_or("count")
                )),
            );
        }
        if let Some(found) = between(message, "invalid value: integer `", "`")
            && let Some(number) = number
        {
            return (
                format!("expected {number} of 0 or more, found {found}"),
                Some("use 0 or a positive number".into()),
            );
        }
    }
    if message.contains("expected a string") {
        return (
            message.into(),
            Some(format!(
                "put the value in double quotes, e.g. {} = \"10s\"",
                key_or("duration")
            )),
        );
    }
    (message.into(), None)
}

/// "a whole number" for serde's integer type names, "a number" for floats.
fn number_kind(expected: &str) -> Option<&'static str> {
    let t = expected.trim();
    if [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
    ]
    .contains(&t)
    {
        Some("a whole number")
    } else if ["f32", "f64"].contains(&t) {
        Some("a number")
    } else {
        None
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = s.split_once(start)?.1;
    Some(rest.split_once(end).map_or(rest, |(inside, _)| inside))
}

/// The key of the `key = value` line that holds byte `at`.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_owned())
}

/// The bare word (a key or a section name) that starts at byte `at`.
fn word_at(text: &str, at: usize) -> Option<&str> {
    let rest = text.get(at..)?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(text: &str) -> (String, Option<String>) {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Run {
            count: u32,
            duration: Option<String>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct File {
            run: Run,
        }
        let e = toml::from_str::<File>(text).unwrap_err();
        explain(e.message().trim(), text, e.span())
    }

    #[test]
    fn a_quoted_number_says_so_and_names_the_key() {
        let (message, fix) = explained("[run]\ncount = \"twenty\"\n");
        assert_eq!(
            message,
            "expected a whole number, found the string \"twenty\""
        );
        assert_eq!(
            fix.unwrap(),
            "write the number without quotes, e.g. count = 20"
        );
    }

    #[test]
    fn a_negative_count_asks_for_zero_or_more() {
        let (message, fix) = explained("[run]\ncount = -5\n");
        assert_eq!(message, "expected a whole number of 0 or more, found -5");
        assert_eq!(fix.unwrap(), "use 0 or a positive number");
    }

    #[test]
    fn a_missing_key_is_named_with_the_fix() {
        let (message, fix) = explained("[run]\nduration = \"1s\"\n");
        assert_eq!(message, "missing key `count`");
        assert!(fix.unwrap().starts_with("add `count = ...`"));
    }

    #[test]
    fn a_duplicate_section_is_named() {
        let (message, fix) = explained("[run]\ncount = 1\n[run]\ncount = 2\n");
        assert_eq!(message, "`run` is defined twice");
        assert!(fix.unwrap().starts_with("keep one"));
    }

    #[test]
    fn an_unclosed_string_says_so() {
        let (message, fix) = explained("[run]\ncount = 1\nduration = \"1s\n");
        assert_eq!(message, "a string is not closed");
        assert!(fix.is_some());
    }

    #[test]
    fn a_number_where_a_string_goes_asks_for_quotes() {
        let (_, fix) = explained("[run]\ncount = 1\nduration = 3\n");
        assert_eq!(
            fix.unwrap(),
            "put the value in double quotes, e.g. duration = \"10s\""
        );
    }
}
