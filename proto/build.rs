//! Generates the Rust code for `faktory_gateway/v1/gateway.proto` with `protox`
//! (a pure-Rust protobuf compiler), so no `protoc` is needed on any machine.

use std::path::PathBuf;

const PROTO: &str = "faktory_gateway/v1/gateway.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");

    let descriptors = protox::compile([PROTO], ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("faktory_gateway_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .bytes(".faktory_gateway.v1.Job.args")
        .bytes(".faktory_gateway.v1.Job.custom")
        .compile_fds(descriptors)?;
    Ok(())
}
