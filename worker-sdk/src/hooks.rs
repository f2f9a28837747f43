//! Lifecycle hooks registered with [`WorkerBuilder::on_start`],
//! [`on_quiet`](crate::WorkerBuilder::on_quiet) and
//! [`on_stop`](crate::WorkerBuilder::on_stop), called in registration order
//! on the worker's own task: keep them short (spawn longer work).

/// A hook.
type Hook = Box<dyn Fn() + Send + Sync>;

/// A point in the worker's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// `run` started, before the first connection.
    Start,
    /// Shutdown began: the shutdown signal fired, running jobs' cancellation
    /// fired, no new job starts.
    Quiet,
    /// `run` is about to return.
    Stop,
}

/// Every registered hook.
#[derive(Default)]
pub(crate) struct Hooks(Vec<(Event, Hook)>);

impl Hooks {
    /// Adds `hook` for `event`.
    pub(crate) fn add(&mut self, event: Event, hook: impl Fn() + Send + Sync + 'static) {
        self.0.push((event, Box::new(hook)));
    }

    /// Calls the hooks of `event`, in registration order.
    pub(crate) fn fire(&self, event: Event) {
        for (_, hook) in self.0.iter().filter(|(e, _)| *e == event) {
            hook();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn hooks_of_an_event_run_in_registration_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut hooks = Hooks::default();
        for (event, name) in [
            (Event::Stop, "stop"),
            (Event::Start, "start 1"),
            (Event::Start, "start 2"),
        ] {
            let log = log.clone();
            hooks.add(event, move || log.lock().unwrap().push(name));
        }
        hooks.fire(Event::Start);
        hooks.fire(Event::Quiet);
        assert_eq!(*log.lock().unwrap(), ["start 1", "start 2"]);
        hooks.fire(Event::Stop);
        assert_eq!(log.lock().unwrap().last(), Some(&"stop"));
    }
}
