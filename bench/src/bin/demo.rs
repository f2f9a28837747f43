//! The one-command demo (lands once the gateway's `serve` is available).

fn main() {
    eprintln!("demo: not available yet");
    std::process::exit(1);
}
