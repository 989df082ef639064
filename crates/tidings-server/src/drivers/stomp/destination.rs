//! STOMP destinations and the hub names they map to.
//!
//! `/topic/<name>` is pub/sub on the hub's topic `<name>` (the same topics every other
//! protocol sees; subscriptions may use `*`, `>` or RabbitMQ's `#`). `/queue/<name>` is a
//! point-to-point queue `<name>`. Anything else is refused.

/// Where a destination points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Dest {
    Topic(String),
    Queue(String),
}

pub(super) const TOPIC: &str = "/topic/";
pub(super) const QUEUE: &str = "/queue/";

impl Dest {
    pub(super) fn parse(text: &str) -> Result<Dest, String> {
        if let Some(name) = text.strip_prefix(TOPIC) {
            return Ok(Dest::Topic(name.to_owned()));
        }
        if let Some(name) = text.strip_prefix(QUEUE) {
            return Ok(Dest::Queue(name.to_owned()));
        }
        Err(format!(
            "unknown destination {text:?}: use /topic/<name> (pub/sub) or /queue/<name> (point-to-point)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_map_to_hub_names() {
        assert_eq!(
            Dest::parse("/topic/chat.*"),
            Ok(Dest::Topic("chat.*".into()))
        );
        assert_eq!(Dest::parse("/queue/jobs"), Ok(Dest::Queue("jobs".into())));
        assert!(Dest::parse("/exchange/x").is_err());
        assert!(Dest::parse("chat").is_err());
    }
}
