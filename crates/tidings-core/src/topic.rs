//! Topic names and subscription patterns.
//!
//! A topic is a dot-separated list of non-empty tokens (`chat.lobby`, `prices.NASDAQ.AAPL`).
//! A pattern may also use `*` (exactly one token) and `>` (one or more remaining tokens, last
//! token only). RabbitMQ's `#` is accepted as a synonym of `>` so STOMP users feel at home.

use std::fmt;
use std::sync::Arc;

/// Longest accepted topic or pattern, in bytes: keeps routing keys and history keys small.
pub const MAX_TOPIC_LEN: usize = 256;
/// Most tokens in a topic: bounds the routing trie's depth.
pub const MAX_TOKENS: usize = 32;

/// Why a topic or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is longer than {MAX_TOPIC_LEN} bytes")]
    TooLong,
    #[error("topic has more than {MAX_TOKENS} tokens")]
    TooManyTokens,
    #[error("topic {0:?} has an empty token (two dots, or a leading or trailing dot)")]
    EmptyToken(String),
    #[error("topic {0:?} contains whitespace or a control character")]
    BadCharacter(String),
    #[error("{0:?} is a pattern; publish needs a topic without wildcards")]
    Wildcard(String),
    #[error("pattern {0:?}: a wildcard must be a whole token and `>` may only be last")]
    BadWildcard(String),
}

/// One token of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token {
    Literal(Box<str>),
    /// `*`: exactly one token.
    One,
    /// `>` (or `#`): one or more tokens, always last.
    Rest,
}

/// A validated subscription pattern (an exact topic is a pattern without wildcards).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: Arc<str>,
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses and validates a pattern.
    pub fn parse(text: &str) -> Result<Self, TopicError> {
        check_shape(text)?;
        let count = text.split('.').count();
        let mut tokens = Vec::with_capacity(count);
        for (i, tok) in text.split('.').enumerate() {
            let token = match tok {
                "*" => Token::One,
                ">" | "#" if i + 1 == count => Token::Rest,
                _ if tok.contains(['*', '>', '#']) && tok.len() > 1 => {
                    return Err(TopicError::BadWildcard(text.to_owned()))
                }
                ">" | "#" => return Err(TopicError::BadWildcard(text.to_owned())),
                _ => Token::Literal(tok.into()),
            };
            tokens.push(token);
        }
        Ok(Pattern {
            text: text.into(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern text, shared.
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// True when the pattern has no wildcard, i.e. it names exactly one topic.
    pub fn is_exact(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Literal(_)))
    }

    /// Does this pattern match the concrete topic?
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        for token in &self.tokens {
            match token {
                Token::Rest => return parts.next().is_some(),
                Token::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Token::Literal(lit) => {
                    if parts.next() != Some(&**lit) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// Does every topic matched by `other` also match `self`? Used by permissions: a right on
    /// `chat.>` covers a subscription to `chat.*` but not one to `>`.
    pub fn covers(&self, other: &Pattern) -> bool {
        let mut theirs = other.tokens.iter();
        for mine in &self.tokens {
            let Some(their) = theirs.next() else {
                return false;
            };
            match (mine, their) {
                (Token::Rest, _) => return true,
                (Token::One, Token::Rest) => return false,
                (Token::One, _) => {}
                (Token::Literal(a), Token::Literal(b)) => {
                    if a != b {
                        return false;
                    }
                }
                (Token::Literal(_), _) => return false,
            }
        }
        theirs.next().is_none()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Validates a concrete topic name (no wildcards), as used by publish.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check_shape(topic)?;
    if topic.split('.').any(|t| t == "*" || t == ">" || t == "#") {
        return Err(TopicError::Wildcard(topic.to_owned()));
    }
    Ok(())
}

fn check_shape(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty);
    }
    if text.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TopicError::BadCharacter(text.to_owned()));
    }
    let mut count = 0;
    for tok in text.split('.') {
        if tok.is_empty() {
            return Err(TopicError::EmptyToken(text.to_owned()));
        }
        count += 1;
    }
    if count > MAX_TOKENS {
        return Err(TopicError::TooManyTokens);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn wildcards_match_as_documented() {
        assert!(p("chat.lobby").matches("chat.lobby"));
        assert!(!p("chat.lobby").matches("chat.lobby.x"));
        assert!(p("chat.*").matches("chat.lobby"));
        assert!(!p("chat.*").matches("chat"));
        assert!(!p("chat.*").matches("chat.a.b"));
        assert!(p("chat.>").matches("chat.a.b"));
        assert!(!p("chat.>").matches("chat"));
        assert!(p("chat.#").matches("chat.a"));
        assert!(p(">").matches("x"));
        assert!(p("*.b.>").matches("a.b.c.d"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Pattern::parse(""), Err(TopicError::Empty));
        assert!(matches!(
            Pattern::parse("a..b"),
            Err(TopicError::EmptyToken(_))
        ));
        assert!(matches!(
            Pattern::parse("a.>.b"),
            Err(TopicError::BadWildcard(_))
        ));
        assert!(matches!(
            Pattern::parse("a.b*"),
            Err(TopicError::BadWildcard(_))
        ));
        assert!(matches!(
            Pattern::parse("a b"),
            Err(TopicError::BadCharacter(_))
        ));
        assert!(matches!(
            validate_topic("a.*"),
            Err(TopicError::Wildcard(_))
        ));
        assert!(validate_topic("prices.NASDAQ.AAPL").is_ok());
    }

    #[test]
    fn covers_is_pattern_containment() {
        assert!(p("chat.>").covers(&p("chat.*")));
        assert!(p("chat.>").covers(&p("chat.a.b")));
        assert!(!p("chat.>").covers(&p(">")));
        assert!(!p("chat.*").covers(&p("chat.>")));
        assert!(p("*.x").covers(&p("a.x")));
        assert!(!p("a.x").covers(&p("*.x")));
        assert!(p(">").covers(&p("a.*.>")));
    }
}
