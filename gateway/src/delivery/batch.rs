//! Cutting deliveries into `JobBatch` messages no larger than a worker
//! accepts, by count and by encoded bytes.

use faktory_gateway_proto::v1::{Delivery, JobBatch};

/// Most deliveries in one batch, whatever their size: keeps one message from
/// holding a worker's whole window when windows are large.
pub(crate) const MAX_BATCH_JOBS: usize = 1000;

/// Bytes one delivery adds to a batch beyond its own encoding: field tag and
/// length prefix (at most 5 bytes for any length below 4 GiB).
const PER_DELIVERY_OVERHEAD: usize = 6;
/// Bytes the `GatewayMessage { jobs: JobBatch }` envelope adds.
const ENVELOPE_OVERHEAD: usize = 6;

/// Whether a delivery of `delivery_len` encoded bytes fits in a message of at
/// most `max_message_bytes` on its own.
pub(crate) fn fits_alone(delivery_len: usize, max_message_bytes: usize) -> bool {
    delivery_len + PER_DELIVERY_OVERHEAD + ENVELOPE_OVERHEAD <= max_message_bytes
}

/// Splits `deliveries` (each with its encoded length) into batches of at most
/// [`MAX_BATCH_JOBS`] deliveries and `max_message_bytes` encoded bytes, in
/// order. A delivery too large on its own still gets a batch of its own;
/// callers keep those out (see [`fits_alone`]).
pub(crate) fn split(deliveries: Vec<(Delivery, usize)>, max_message_bytes: usize) -> Vec<JobBatch> {
    let mut batches = Vec::new();
    let mut current: Vec<Delivery> = Vec::new();
    let mut size = ENVELOPE_OVERHEAD;
    for (delivery, len) in deliveries {
        let add = len + PER_DELIVERY_OVERHEAD;
        if !current.is_empty()
            && (size + add > max_message_bytes || current.len() >= MAX_BATCH_JOBS)
        {
            batches.push(JobBatch {
                deliveries: std::mem::take(&mut current),
            });
            size = ENVELOPE_OVERHEAD;
        }
        size += add;
        current.push(delivery);
    }
    if !current.is_empty() {
        batches.push(JobBatch {
            deliveries: current,
        });
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use faktory_gateway_proto::v1::{GatewayMessage, Job, gateway_message::Kind};
    use prost::Message;

    fn delivery(jid: usize, payload: usize) -> (Delivery, usize) {
        let d = Delivery {
            job: Some(Job {
                jid: format!("jid-{jid}"),
                jobtype: "t".into(),
                args: format!("[\"{}\"]", "x".repeat(payload)).into_bytes().into(),
                ..Job::default()
            }),
            reservation_deadline_unix_ms: 1_700_000_000_000,
            attempt: 1,
        };
        let len = d.encoded_len();
        (d, len)
    }

    #[test]
    fn batches_stay_under_the_byte_limit_and_keep_order() {
        let max = 4096;
        let input: Vec<_> = (0..200).map(|i| delivery(i, 100 + i * 3)).collect();
        let batches = split(input, max);
        assert!(batches.len() > 1);
        let mut next = 0;
        for batch in batches {
            let message = GatewayMessage {
                kind: Some(Kind::Jobs(batch.clone())),
            };
            assert!(message.encoded_len() <= max, "{}", message.encoded_len());
            for d in batch.deliveries {
                assert_eq!(d.job.unwrap().jid, format!("jid-{next}"));
                next += 1;
            }
        }
        assert_eq!(next, 200);
    }

    #[test]
    fn batches_stay_under_the_count_limit() {
        let input: Vec<_> = (0..2500).map(|i| delivery(i, 1)).collect();
        let batches = split(input, usize::MAX / 2);
        let counts: Vec<_> = batches.iter().map(|b| b.deliveries.len()).collect();
        assert_eq!(counts, vec![1000, 1000, 500]);
    }

    #[test]
    fn fits_alone_matches_the_real_encoding() {
        let (d, len) = delivery(1, 5000);
        let message = GatewayMessage {
            kind: Some(Kind::Jobs(JobBatch {
                deliveries: vec![d],
            })),
        };
        assert!(fits_alone(len, message.encoded_len() + 10));
        assert!(!fits_alone(len, len));
    }
}
