//! Rebuilds the store when a migration is added or changed: `sqlx::migrate!` compiles the
//! repository's `migrations/` in, and on stable Rust cargo does not see a new file there.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
