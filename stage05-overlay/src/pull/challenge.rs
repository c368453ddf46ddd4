//! `WWW-Authenticate`: how a registry says what it wants when it answers 401.
//!
//! - `Basic realm="..."`: send the user name and password with every request.
//! - `Bearer realm="https://auth.example/token",service="registry.example",
//!   scope="repository:library/alpine:pull"`: ask the token server at `realm` for a
//!   token good for `service` and `scope` (anonymously, or with the user name and
//!   password), then send the token with every request. Docker Hub works this way
//!   even for public images: their token is simply anonymous.

use std::collections::HashMap;

/// A challenge the client knows how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// The first challenge of `header` that is Basic or Bearer with a realm.
pub(crate) fn parse(header: &str) -> Option<Challenge> {
    let mut rest = header.trim_start();
    while !rest.is_empty() {
        let end = rest.find([' ', ',']).unwrap_or(rest.len());
        let scheme = rest[..end].to_ascii_lowercase();
        let (params, after) = parameters(&rest[end..]);
        rest = after.trim_start_matches([' ', ',']);
        match scheme.as_str() {
            "basic" => return Some(Challenge::Basic),
            "bearer" => {
                if let Some(realm) = params.get("realm") {
                    return Some(Challenge::Bearer {
                        realm: realm.clone(),
                        service: params.get("service").cloned(),
                        scope: params.get("scope").cloned(),
                    });
                }
            }
            _ => {}
        }
    }
    None
}

/// Reads `key=value` and `key="quoted \" value"` pairs, separated by commas, until the
/// next challenge's scheme (a token not followed by `=`); returns them and the rest.
fn parameters(mut text: &str) -> (HashMap<String, String>, &str) {
    let mut params = HashMap::new();
    loop {
        let trimmed = text.trim_start_matches([' ', ',']);
        let Some(eq) = trimmed.find('=') else {
            return (params, trimmed);
        };
        let key = &trimmed[..eq];
        if key.is_empty() || key.contains([' ', ',', '"']) {
            return (params, trimmed); // a scheme: the next challenge starts here
        }
        let value_start = &trimmed[eq + 1..];
        let (value, after) = if let Some(quoted) = value_start.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = value_start.find(',').unwrap_or(value_start.len());
            (value_start[..end].trim().to_owned(), &value_start[end..])
        };
        params.insert(key.to_ascii_lowercase(), value);
        text = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_docker_hubs_bearer_challenge() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#;
        assert_eq!(
            parse(header),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            })
        );
    }

    #[test]
    fn reads_basic_unquoted_escaped_and_several() {
        assert_eq!(
            parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse(r#"bearer realm=http://t/token, service="a \"b\"""#),
            Some(Challenge::Bearer {
                realm: "http://t/token".into(),
                service: Some("a \"b\"".into()),
                scope: None,
            })
        );
        // An unknown scheme first, then one we know.
        assert_eq!(
            parse(r#"Negotiate abc, Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse("Bearer service=x"), None); // no realm: nowhere to ask
        assert_eq!(parse(""), None);
    }

    proptest! {
        #[test]
        fn never_panics(header in any::<String>()) {
            let _ = parse(&header);
        }

        #[test]
        fn never_panics_on_header_like_text(header in "[A-Za-z =,\"\\\\]{0,40}") {
            let _ = parse(&header);
        }
    }
}
