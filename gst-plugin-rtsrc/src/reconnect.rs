//! The reconnect policy of `rturisrcbin`, with no GStreamer in it: what to do when an
//! attempt to play the source shows frames, ends, fails or stalls.
//!
//! The element runs attempts and reports what happened (`Supervisor::frames`,
//! `Supervisor::ended`); the supervisor answers with what to announce and whether to wait
//! and try again, give up or stop. Backoff doubles from `initial` up to `max` and starts over
//! once frames flow again; `max_attempts` counts the failed attempts of one outage.

use std::time::Duration;

/// The reconnect settings (the element's properties).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub initial: Duration,
    pub max: Duration,
    /// Failed attempts in a row before giving up (0 = never).
    pub max_attempts: u32,
    /// Longest wait for the first frame of an attempt.
    pub connect_timeout: Duration,
    /// Longest gap between frames once they flow.
    pub stall_timeout: Duration,
    /// An ended source is played again (live sources, looping files) rather than ended.
    pub restart_on_eos: bool,
}

/// The `source-state` property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Stopped,
    Connecting,
    Playing,
    Retrying,
    Ended,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Connecting => "connecting",
            State::Playing => "playing",
            State::Retrying => "retrying",
            State::Ended => "ended",
            State::Failed => "failed",
        }
    }
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The source reached its end.
    Ended,
    /// It failed or stalled; retrying may help.
    Failed(String),
    /// No retry can fix this (a missing plugin or codec).
    Fatal(String),
}

/// What to do after an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Wait `delay`, then try again.
    Retry(Retry),
    /// End the stream: the source ended and is not restarted.
    End,
    /// `max_attempts` failed in a row: post an error and end the stream.
    GiveUp { attempts: u32, reason: String },
    /// No retry can help: post an error and end the stream.
    Fatal(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// Failed attempts of this outage so far (1 for the first retry).
    pub attempt: u32,
    pub delay: Duration,
    pub reason: String,
    /// The attempt had shown frames: the source was lost (else it could not be reached).
    pub lost: bool,
    /// The first retry of an outage that is a problem (not a restart after an end): warn.
    pub warn: bool,
}

/// Follows the attempts of one run of the element.
#[derive(Debug)]
pub struct Supervisor {
    policy: Policy,
    attempt: u32,
    delay: Duration,
    /// The current attempt has shown frames.
    connected: bool,
    ever_connected: bool,
}

impl Supervisor {
    pub fn new(policy: Policy) -> Self {
        Supervisor {
            delay: policy.initial,
            policy,
            attempt: 0,
            connected: false,
            ever_connected: false,
        }
    }

    /// A new attempt starts.
    pub fn attempt(&mut self) -> State {
        self.connected = false;
        State::Connecting
    }

    /// How long the current attempt may go without a frame: until the first one, then
    /// between frames.
    pub fn frame_timeout(&self) -> Duration {
        if self.connected {
            self.policy.stall_timeout
        } else {
            self.policy.connect_timeout
        }
    }

    /// Frames arrive. At the first of an attempt the outage is over: returns whether the
    /// source was restored (else it is connected for the first time).
    pub fn frames(&mut self) -> Option<bool> {
        if self.connected {
            return None;
        }
        self.connected = true;
        self.attempt = 0;
        self.delay = self.policy.initial;
        let restored = self.ever_connected;
        self.ever_connected = true;
        Some(restored)
    }

    /// Whether the current attempt has shown frames.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The attempt ended: what to do next, and the state to show meanwhile.
    pub fn ended(&mut self, outcome: Outcome) -> (Next, State) {
        let (reason, restarting) = match outcome {
            Outcome::Ended if !self.policy.restart_on_eos => return (Next::End, State::Ended),
            Outcome::Ended => ("end of stream".to_string(), true),
            Outcome::Failed(reason) => (reason, false),
            Outcome::Fatal(reason) => return (Next::Fatal(reason), State::Failed),
        };
        self.attempt += 1;
        if self.policy.max_attempts > 0 && self.attempt >= self.policy.max_attempts {
            let attempts = self.attempt;
            return (Next::GiveUp { attempts, reason }, State::Failed);
        }
        let retry = Retry {
            attempt: self.attempt,
            delay: self.delay,
            reason,
            lost: self.connected,
            warn: self.attempt == 1 && !restarting,
        };
        self.delay = (self.delay * 2).min(self.policy.max.max(self.policy.initial));
        (Next::Retry(retry), State::Retrying)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            max_attempts: 0,
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(5),
            restart_on_eos: true,
        }
    }

    fn retry(next: (Next, State)) -> Retry {
        assert_eq!(next.1, State::Retrying);
        match next.0 {
            Next::Retry(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn fail(s: &mut Supervisor) -> Retry {
        s.attempt();
        retry(s.ended(Outcome::Failed("refused".into())))
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_warns_once_per_outage() {
        let mut s = Supervisor::new(policy());
        let delays: Vec<u64> = (0..5)
            .map(|_| fail(&mut s).delay.as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        let mut s = Supervisor::new(policy());
        let warns: Vec<bool> = (0..3).map(|_| fail(&mut s).warn).collect();
        assert_eq!(warns, [true, false, false]);
    }

    #[test]
    fn frames_end_the_outage_and_start_the_backoff_over() {
        let mut s = Supervisor::new(policy());
        fail(&mut s);
        fail(&mut s);
        assert_eq!(s.attempt(), State::Connecting);
        assert_eq!(s.frame_timeout(), Duration::from_secs(10));
        assert_eq!(s.frames(), Some(false), "connected for the first time");
        assert_eq!(s.frames(), None, "once per attempt");
        assert_eq!(s.frame_timeout(), Duration::from_secs(5), "now a stall");
        // Lost after playing: a new outage, warned again, from the initial delay.
        let r = retry(s.ended(Outcome::Failed("no frames for 5000 ms".into())));
        assert_eq!(
            (r.attempt, r.delay.as_millis(), r.lost, r.warn),
            (1, 100, true, true)
        );
        let r = fail(&mut s);
        assert_eq!((r.attempt, r.lost, r.warn), (2, false, false));
        s.attempt();
        assert_eq!(s.frames(), Some(true), "restored");
    }

    #[test]
    fn max_attempts_gives_up_after_that_many_failures_in_a_row() {
        let mut s = Supervisor::new(Policy {
            max_attempts: 3,
            ..policy()
        });
        fail(&mut s);
        fail(&mut s);
        s.attempt();
        let (next, state) = s.ended(Outcome::Failed("refused".into()));
        assert_eq!(state, State::Failed);
        assert_eq!(
            next,
            Next::GiveUp {
                attempts: 3,
                reason: "refused".into()
            }
        );
        // Frames in between reset the count.
        let mut s = Supervisor::new(Policy {
            max_attempts: 2,
            ..policy()
        });
        for _ in 0..5 {
            fail(&mut s);
            s.attempt();
            s.frames();
        }
    }

    #[test]
    fn an_end_restarts_quietly_or_ends_the_stream() {
        let mut s = Supervisor::new(policy());
        s.attempt();
        s.frames();
        let r = retry(s.ended(Outcome::Ended));
        assert_eq!(
            (r.reason.as_str(), r.warn, r.lost),
            ("end of stream", false, true)
        );
        let mut s = Supervisor::new(Policy {
            restart_on_eos: false,
            ..policy()
        });
        s.attempt();
        assert_eq!(s.ended(Outcome::Ended), (Next::End, State::Ended));
    }

    #[test]
    fn a_fatal_problem_is_never_retried() {
        let mut s = Supervisor::new(policy());
        s.attempt();
        assert_eq!(
            s.ended(Outcome::Fatal("no decoder".into())),
            (Next::Fatal("no decoder".into()), State::Failed)
        );
    }
}
