//! A worker's window: how many jobs the gateway may have delivered to it and
//! not yet seen finished (acked, failed or released), like AMQP prefetch.

/// The window in force for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    size: u32,
}

impl Window {
    /// The worker's requested size lowered to `max`. `requested` must be at
    /// least 1 (hello validation refuses 0).
    pub(crate) fn new(requested: u32, max: u32) -> Window {
        Window {
            size: requested.clamp(1, max.max(1)),
        }
    }

    /// The size in force.
    pub(crate) fn size(self) -> u32 {
        self.size
    }

    /// How many more jobs may go to a worker holding `unfinished` jobs. Zero
    /// when the window was lowered below what the worker already holds.
    pub(crate) fn open(self, unfinished: usize) -> usize {
        (self.size as usize).saturating_sub(unfinished)
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn clamps_to_max_and_counts_open_slots() {
        let w = Window::new(500, 100);
        assert_eq!(w.size(), 100);
        assert_eq!(w.open(0), 100);
        assert_eq!(w.open(99), 1);
        assert_eq!(w.open(100), 0);
        // Lowered below what the worker holds: nothing more, no underflow.
        assert_eq!(Window::new(2, 100).open(10), 0);
    }
}
