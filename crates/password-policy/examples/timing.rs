//! Measures how long `Policy::check` takes. Run with
//! `cargo run --release -p mamori-password-policy --example timing`.

use std::hint::black_box;
use std::time::Instant;

use mamori_password_policy::{Context, Policy};

fn main() {
    let policy = Policy::default();
    let macs = ["00:1A:2B:3C:4D:5E".to_owned()];
    let ssids = ["MAMORI-5G-4D5E".to_owned()];
    let ctx = Context {
        username: "yamada",
        model: "MR-7000X",
        serial: "MMR2403A0017",
        hostname: "gw-office",
        macs: &macs,
        ssids: &ssids,
    };
    let rounds = 20_000;
    for password in [
        "Vq7#mZ2p!Lx9",
        "tsukimi-dango-kaze-7",
        "correct horse battery staple",
        "7kHxR3nWq9PzT4mYc2Vb",
        "きょうはいいてんきですね",
        "Baseball2024!",
        "abcabcabcabc",
        "trustno1!!!!",
    ] {
        let verdict = policy.check(password, &ctx).map_err(|r| r.rule);
        let start = Instant::now();
        for _ in 0..rounds {
            let _ = black_box(policy.check(black_box(password), black_box(&ctx)));
        }
        let per_check = start.elapsed() / rounds;
        println!("{password:32} {verdict:?}: {per_check:?} per check");
    }
}
