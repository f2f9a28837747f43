//! `faktory-gateway health`: asks a running gateway's gRPC health service
//! (`grpc.health.v1.Health/Check`, service `""`) whether it is SERVING. The
//! Docker image's `HEALTHCHECK` runs it, so it needs no Faktory and reads the
//! same environment as the gateway (see `gateway_target`).

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::gateway_target::TargetArgs;

/// Options of the `health` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HealthArgs {
    #[command(flatten)]
    target: TargetArgs,
}

/// Asks the gateway for its health; `Ok(true)` only when it is SERVING.
/// Prints the status (or why it could not be asked) on stdout.
///
/// # Errors
/// A bad URL or an unreadable CA file.
pub(crate) async fn run(args: &HealthArgs) -> anyhow::Result<bool> {
    let url = args.target.target();
    let endpoint = args.target.endpoint(&url)?;
    let timeout = args.target.timeout();
    let check = async {
        let channel = endpoint.connect().await?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        anyhow::Ok(response.into_inner().status())
    };
    let status = match tokio::time::timeout(timeout, check).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            // `{:#}` prints the error with its causes.
            println!("{url}: UNREACHABLE ({e:#})");
            return Ok(false);
        }
        Err(_) => {
            println!("{url}: UNREACHABLE (no answer within {timeout:?})");
            return Ok(false);
        }
    };
    println!("{url}: {}", status.as_str_name());
    Ok(status == ServingStatus::Serving)
}
