//! [`fit`]: the [`CostModel`] constants that reproduce what a real Faktory did at the
//! calibration points (the `calibrate` example measures them and prints the fit).
//!
//! Six measured rates set six constants; the other calibration points check the fit:
//! - one connection pipelining FETCH x8 then ACK x8 pays the waking costs once per 8 jobs,
//!   one command at a time pays them per command: together they give the service time of a
//!   FETCH+ACK pair and the waking costs (turnaround + wake);
//! - the same two workloads on a busy server (200 connections one at a time, 32 connections
//!   pipelining 8 deep): their ratio is how much of the waking cost is the server's work
//!   ([`CostModel::wake`]), and either rate then gives the capacity;
//! - PUSH one at a time and PUSHB of 100 on one connection give the push costs.
//!
//! Rates include the measuring client's own time per job, which the model does not know. The
//! fit reads it off the same workloads run against a known model in the same run (`base`):
//! whatever that model's rate does not explain is the client's.
//!
//! FETCH and ACK keep the base model's proportion; FAIL, BEAT, INFO and other commands scale
//! with the FETCH+ACK pair; PUSHB keeps the base model's cost per command.

use std::time::Duration;

use crate::cost::CostModel;

/// Jobs per second at the calibration points [`fit`] reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// FETCH, wait, ACK, wait on one connection.
    pub one_at_a_time: f64,
    /// FETCH x8 written at once, then ACK x8, on one connection.
    pub pipelined: f64,
    /// FETCH, wait, ACK, wait on each of 200 connections.
    pub one_at_a_time_busy: f64,
    /// FETCH x8 then ACK x8 on each of 32 connections.
    pub pipelined_busy: f64,
    /// PUSH, wait, on one connection.
    pub push: f64,
    /// PUSHB of 100 jobs, wait, on one connection.
    pub push_batch: f64,
}

/// Pipeline depth of [`Observed::pipelined`] and [`Observed::pipelined_busy`].
pub const DEPTH: usize = 8;
/// Jobs per PUSHB in [`Observed::push_batch`].
pub const BATCH: usize = 100;

/// The model that would have done `real`, given that `base` did `base_observed` in the same
/// run. See the module docs.
pub fn fit(base: &CostModel, base_observed: &Observed, real: &Observed) -> CostModel {
    let (depth, batch) = (DEPTH as f64, BATCH as f64);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let per_job = |rate: f64| 1e6 / rate.max(f64::MIN_POSITIVE);
    let base_pair = us(base.fetch) + us(base.ack);
    let base_waking = us(base.turnaround) + us(base.wake);
    // The client's own µs per job in each workload: what the base model does not explain.
    let client_one =
        (per_job(base_observed.one_at_a_time) - base_pair - 2.0 * base_waking).max(0.0);
    let client_pipelined =
        (per_job(base_observed.pipelined) - base_pair - 2.0 * base_waking / depth).max(0.0);
    let client_push = (per_job(base_observed.push) - us(base.push) - base_waking).max(0.0);
    let base_batch = us(base.push_batch) + batch * us(base.push_batch_job);
    let client_batch =
        (batch * per_job(base_observed.push_batch) - base_batch - base_waking).max(0.0);

    // One connection: one at a time = pair + 2 waking; pipelined = pair + 2 waking / depth.
    let one = per_job(real.one_at_a_time) - client_one;
    let pipelined = per_job(real.pipelined) - client_pipelined;
    let waking = ((one - pipelined) / (2.0 - 2.0 / depth)).max(0.0);
    let pair = (pipelined - 2.0 * waking / depth).max(1.0);
    // Busy server: rate = capacity / work per job, work = pair + 2 wake (one at a time) or
    // pair + 2 wake / depth (pipelined); their ratio gives wake.
    let ratio = real.pipelined_busy / real.one_at_a_time_busy.max(f64::MIN_POSITIVE);
    let wake = (pair * (ratio - 1.0) / (2.0 - 2.0 * ratio / depth)).clamp(0.0, waking);
    let capacity = (real.one_at_a_time_busy * (pair + 2.0 * wake) / 1e6
        * (real.pipelined_busy * (pair + 2.0 * wake / depth) / 1e6))
        .sqrt();

    let push = (per_job(real.push) - client_push - waking).max(1.0);
    let batch_job =
        ((batch * per_job(real.push_batch) - client_batch - waking - us(base.push_batch)) / batch)
            .max(0.0);

    let scale = pair / base_pair;
    let micros = |v: f64| Duration::from_nanos((v * 1e3).round() as u64);
    let scaled = |d: Duration| micros(us(d) * scale);
    CostModel {
        fetch: micros(pair * us(base.fetch) / base_pair),
        ack: micros(pair * us(base.ack) / base_pair),
        fail: scaled(base.fail),
        push: micros(push),
        push_batch: base.push_batch,
        push_batch_job: micros(batch_job),
        beat: scaled(base.beat),
        info: scaled(base.info),
        other: scaled(base.other),
        turnaround: micros(waking - wake),
        wake: micros(wake),
        capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a server with `model` does at the fit's points, measured by a client that takes
    /// `client` µs per job of its own (the same in every workload).
    fn observe(model: &CostModel, client: f64) -> Observed {
        let (depth, batch) = (DEPTH as f64, BATCH as f64);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let pair = us(model.fetch) + us(model.ack);
        let (turnaround, wake) = (us(model.turnaround), us(model.wake));
        let waking = turnaround + wake;
        Observed {
            one_at_a_time: 1e6 / (pair + 2.0 * waking + client),
            pipelined: 1e6 / (pair + 2.0 * waking / depth + client),
            one_at_a_time_busy: 1e6 * model.capacity / (pair + 2.0 * wake),
            pipelined_busy: 1e6 * model.capacity / (pair + 2.0 * wake / depth),
            push: 1e6 / (us(model.push) + waking + client),
            push_batch: 1e6 * batch
                / (us(model.push_batch) + batch * us(model.push_batch_job) + waking + client),
        }
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) <= Duration::from_nanos(500)
    }

    #[test]
    fn recovers_the_model_that_produced_the_rates() {
        let base = CostModel::faktory_1_10();
        let micros = Duration::from_micros;
        let truth = CostModel {
            fetch: base.fetch * 2,
            ack: base.ack * 2,
            push: micros(70),
            push_batch_job: micros(33),
            turnaround: micros(25),
            wake: micros(30),
            capacity: 4.5,
            ..base.clone()
        };
        let fitted = fit(&base, &observe(&base, 12.0), &observe(&truth, 12.0));
        for (name, got, want) in [
            ("fetch", fitted.fetch, truth.fetch),
            ("ack", fitted.ack, truth.ack),
            ("push", fitted.push, truth.push),
            (
                "push_batch_job",
                fitted.push_batch_job,
                truth.push_batch_job,
            ),
            ("turnaround", fitted.turnaround, truth.turnaround),
            ("wake", fitted.wake, truth.wake),
        ] {
            assert!(close(got, want), "{name}: fitted {got:?}, truth {want:?}");
        }
        assert!((fitted.capacity - 4.5).abs() < 0.01, "{}", fitted.capacity);
        // The unmeasured commands scale with the FETCH+ACK pair, twice the base's.
        assert!(close(fitted.info, base.info * 2), "{:?}", fitted.info);
    }

    #[test]
    fn a_server_no_busier_for_one_at_a_time_work_has_no_wake_work() {
        let base = CostModel::faktory_1_10();
        let mut real = observe(&base, 0.0);
        real.pipelined_busy = real.one_at_a_time_busy * 0.9;
        let fitted = fit(&base, &observe(&base, 0.0), &real);
        assert_eq!(fitted.wake, Duration::ZERO);
        assert!(
            close(fitted.turnaround, base.turnaround),
            "{:?}",
            fitted.turnaround
        );
    }
}
