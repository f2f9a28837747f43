//! The `Admin` gRPC service: what operators ask a gateway about itself.
//! `ListWorkers` answers the workers listing ([`crate::workers`]); the token
//! it takes is [`Role::Admin`]'s.

use std::sync::Arc;

use faktory_gateway_proto::v1::admin_server::Admin;
use faktory_gateway_proto::v1::{ListWorkersRequest, ListWorkersResponse};
use tonic::{Request, Response, Status};

use crate::auth::{Auth, Role};
use crate::delivery::DeliveryPath;

/// The `Admin` service.
pub(crate) struct AdminService {
    /// The tokens.
    pub(crate) auth: Arc<Auth>,
    /// The delivery path, whose sessions are listed.
    pub(crate) delivery: DeliveryPath,
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_workers(
        &self,
        request: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        self.auth.check(Role::Admin, request.metadata())?;
        let workers = self
            .delivery
            .workers()
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(Response::new(ListWorkersResponse { workers }))
    }
}
