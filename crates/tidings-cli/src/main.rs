//! `tidings`: run the server, publish, subscribe, chat, run demo feeds, trace the traffic.

mod chat;
mod demo;
mod pubsub;
mod serve;
mod tap;
mod tls;
mod token;

use clap::{Parser, Subcommand};

/// mimalloc, measured against glibc malloc: see docs/performance.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tidings",
    version,
    about = "A real-time messaging server, client and CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (every listener on its embedded defaults unless told otherwise).
    Serve(serve::ServeArgs),
    /// Publish one message to a topic.
    Pub(pubsub::PubArgs),
    /// Subscribe to topics and print messages as they arrive.
    Sub(pubsub::SubArgs),
    /// Chat in a room (topic chat.ROOM) from the terminal: history on join, who comes and
    /// goes, messages as they arrive; each line typed is sent.
    Chat(chat::ChatArgs),
    /// Feeds for the demo pages (`tidings demo ticker`).
    Demo(demo::DemoArgs),
    /// Trace tidings' traffic live from a raw packet socket (Linux; root or CAP_NET_RAW).
    Tap(tap::TapArgs),
    /// Print a signed token (HS256 JWT) for a user and its rights, for trying tokens out.
    Token(token::TokenArgs),
    /// Read a password on standard input and print its argon2id hash (PHC string), for a
    /// configured user's `password_hash`.
    HashPassword(token::HashPasswordArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIDINGS_LOG")
                // Warnings, and what admins do (an audit trail: issue 18).
                .unwrap_or_else(|_| "warn,tidings_server::runtime::admin=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tidings: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Pub(args) => pubsub::publish(args).await,
            Command::Sub(args) => pubsub::subscribe(args).await,
            Command::Chat(args) => chat::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Tap(args) => tap::run(args).await,
            Command::Token(args) => token::run(args),
            Command::HashPassword(args) => token::hash_password(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings: {e}");
            ExitCode::FAILURE
        }
    }
}
