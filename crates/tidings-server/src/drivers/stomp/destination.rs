//! STOMP destinations and the hub names they map to.
//!
//! `/topic/<name>` is pub/sub on the hub's topic `<name>` (the same topics every other
//! protocol sees; subscriptions may use `*`, `>` or RabbitMQ's `#`). `/queue/<name>` is a
//! point-to-point queue `<name>`. Anything else is refused, and so is a name with a slash
//! (`/topic/a/b`): names are dot-separated tokens (`/topic/a.b`), and a slash would make a
//! topic that looks hierarchical but that no wildcard can reach; RabbitMQ refuses it too.

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
        let (prefix, name, make): (_, _, fn(String) -> Dest) = if let Some(name) =
            text.strip_prefix(TOPIC)
        {
            (TOPIC, name, Dest::Topic)
        } else if let Some(name) = text.strip_prefix(QUEUE) {
            (QUEUE, name, Dest::Queue)
        } else {
            return Err(format!(
                    "unknown destination {text:?}: use /topic/<name> (pub/sub) or /queue/<name> (point-to-point)"
                ));
        };
        if name.contains('/') {
            let dotted = name.trim_matches('/').replace('/', ".");
            return Err(format!(
                "invalid destination {text:?}: names are dot-separated, without slashes ({prefix}{dotted})"
            ));
        }
        Ok(make(name.to_owned()))
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
        let slash = Dest::parse("/topic/a/b").unwrap_err();
        assert!(slash.contains("without slashes (/topic/a.b)"), "{slash}");
        assert!(Dest::parse("/queue/jobs/1").is_err());
        assert!(Dest::parse("chat").is_err());
    }
}
