//! docs/configuration.md stays true: its sample file parses and validates, and its defaults
//! are the defaults.

use tidings_server::ServerConfig;

fn sample() -> String {
    let doc = include_str!("../../../docs/configuration.md");
    let start = doc.find("```toml").expect("a toml block") + "```toml".len();
    let end = start + doc[start..].find("```").expect("end of block");
    doc[start..end].to_owned()
}

#[test]
fn the_documented_file_parses_and_validates() {
    let cfg: ServerConfig = toml::from_str(&sample()).expect("docs/configuration.md sample parses");
    cfg.validate().expect("and validates");
    assert_eq!(cfg.hub.topics.len(), 1);
    assert_eq!(cfg.hub.auth.users[0].name, "alice");
}

#[test]
fn the_documented_defaults_are_the_defaults() {
    let mut cfg: ServerConfig = toml::from_str(&sample()).unwrap();
    let def = ServerConfig::default();
    // The sample's one topic rule (prices.> conflated) is also the embedded default.
    cfg.hub.auth = def.hub.auth.clone();
    assert_eq!(cfg, def);
}

#[test]
fn a_wrong_field_is_named() {
    let cfg: ServerConfig = toml::from_str("[[hub.topics]]\npattern = \"a..b\"\n").unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("hub.topics[0].pattern"), "{err}");
    let err = toml::from_str::<ServerConfig>("http = \"nowhere\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an address"), "{err}");
}
