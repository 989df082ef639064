//! `tidings token`: prints an HS256 token for trying tokens out and for tests; and
//! `tidings hash-password`: an argon2id hash for a configured user. A deployment's
//! own backend signs the real ones (docs/security.md).

use clap::Args;
use jsonwebtoken::{encode, EncodingKey, Header};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
    /// The shared secret (the server's `[auth.jwt] hmac_secret` or TIDINGS_JWT_SECRET).
    #[arg(long, env = "TIDINGS_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// The user (`sub`).
    #[arg(long)]
    sub: String,
    /// A topic pattern the token may publish to (repeatable). Without --publish and
    /// --subscribe the token carries no rights claim and the server's `[auth.jwt]` rights apply.
    #[arg(long)]
    publish: Vec<String>,
    /// A pattern the token may subscribe within (repeatable).
    #[arg(long)]
    subscribe: Vec<String>,
    /// The token may use the admin API (`/api/admin/...`, when `[admin]` is configured). With
    /// only --admin, the token has no publish or subscribe right.
    #[arg(long)]
    admin: bool,
    /// Lifetime: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: u64,
    /// The `iss` claim.
    #[arg(long)]
    issuer: Option<String>,
    /// The `aud` claim.
    #[arg(long)]
    audience: Option<String>,
}

/// `90`, `90s`, `15m`, `1h`, `7d` as seconds.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 1h or 7d"))?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}

pub(crate) fn run(args: TokenArgs) -> Result<(), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut claims = serde_json::json!({
        "sub": args.sub,
        "iat": now,
        "exp": now.saturating_add(args.ttl),
    });
    if !args.publish.is_empty() || !args.subscribe.is_empty() || args.admin {
        claims["tidings"] = serde_json::json!({
            "publish": args.publish,
            "subscribe": args.subscribe,
        });
        if args.admin {
            claims["tidings"]["admin"] = true.into();
        }
    }
    if let Some(iss) = args.issuer {
        claims["iss"] = iss.into();
    }
    if let Some(aud) = args.audience {
        claims["aud"] = aud.into();
    }
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(args.secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign: {e}"))?;
    println!("{token}");
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct HashPasswordArgs {}

/// `tidings hash-password`: reads a password from the first line of standard input (never
/// from the command line, where other users' `ps` would see it) and prints its argon2id
/// PHC string, for a user's `password_hash`.
pub(crate) fn hash_password(_: HashPasswordArgs) -> Result<(), String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (echoed; or pipe it in): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("an empty password; give one on standard input".into());
    }
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| format!("no randomness for the salt: {e}"))?;
    println!("{}", tidings_core::hash_argon2(password, &salt)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ttls_read_as_seconds() {
        assert_eq!(super::parse_ttl("90"), Ok(90));
        assert_eq!(super::parse_ttl("15m"), Ok(900));
        assert_eq!(super::parse_ttl("1h"), Ok(3600));
        assert_eq!(super::parse_ttl("2d"), Ok(172_800));
        assert!(super::parse_ttl("1y").is_err());
        assert!(super::parse_ttl("h").is_err());
    }
}
