//! `GET /v1/workers`: the workers listing as JSON,
//! `{"workers": [{"worker_id": "...", "hostname": "...", ...}]}`, one entry
//! per open `Work` session with the fields of [`WorkerSnapshot`] (the same
//! names as `Admin.ListWorkers`). Guarded like that rpc ([`Role::Admin`]).

use http::StatusCode;
use serde::Serialize;

use super::Api;
use super::reply::{self, Reply};
use crate::auth::Role;
use crate::workers::WorkerSnapshot;

#[derive(Serialize)]
struct WorkersBody {
    workers: Vec<WorkerSnapshot>,
}

/// Handles one `GET /v1/workers`.
pub(super) fn handle(api: &Api, headers: &http::HeaderMap) -> Reply {
    if let Err(status) = api
        .auth
        .check_header(Role::Admin, headers, "GET /v1/workers")
    {
        return reply::status(&status);
    }
    let body = WorkersBody {
        workers: api.delivery.workers(),
    };
    reply::json(StatusCode::OK, &body)
}
