//! One request and its answer as the serving loop wraps them: the request
//! body times out when it stalls, and a body the handler left unread
//! (an early answer: 401, 403, 413, 415, 429, 507…) is kept until the
//! answer is sent, then drained for a bounded time and number of bytes.
//!
//! Why the leftover body is kept: when a handler drops a request body
//! before its answer is written, hyper's HTTP/2 layer resets the stream
//! with `CANCEL` at once and throws away the answer's buffered frames, so a
//! client still uploading sees a reset stream and no status (curl exits
//! 92). Kept until the answer's last frame is queued, the stream ends
//! cleanly on our side; draining lets a client that keeps sending finish
//! its upload and read the answer, and when the drain budget runs out the
//! body is dropped then, which resets the stream with `NO_ERROR` after a
//! complete answer (RFC 9113 §8.1: the client must keep the answer). Over
//! HTTP/1.1 the same drain keeps the connection usable and the client's
//! socket from being reset under the answer. A request that asked
//! `Expect: 100-continue` and was answered before its body was read is
//! not drained: its client sends no body after a final answer.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::connections::{Activity, HttpStats};

/// How request bodies are read and drained (a part of
/// [`HttpLimits`](super::HttpLimits)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyPolicy {
    /// A request body that sends nothing for this long fails with
    /// [`BodyTimedOut`].
    pub idle_timeout: Duration,
    /// After an early answer, read and discard at most this many bytes of
    /// the rest of the request body…
    pub drain_bytes: u64,
    /// …for at most this long.
    pub drain_time: Duration,
}

/// The error a request body returns when its client sent nothing for the
/// configured body time-out (`http.body_timeout_secs`).
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body bytes for {0:?}")]
pub struct BodyTimedOut(pub Duration);

impl BodyTimedOut {
    /// True when `error` (a body error as a handler sees it, possibly
    /// wrapped by axum) is this time-out.
    pub fn is(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(e) = current {
            if e.is::<BodyTimedOut>() {
                return true;
            }
            current = e.source();
        }
        false
    }
}

/// What a request's body and its answer's body share: the body the
/// handler left unread, and whether the answer is done.
struct Exchange {
    policy: BodyPolicy,
    leftover: Mutex<Leftover>,
    activity: Arc<Activity>,
}

#[derive(Default)]
struct Leftover {
    body: Option<Incoming>,
    answered: bool,
}

impl Exchange {
    /// The handler dropped the request body before its end.
    fn left_unread(&self, body: Incoming) {
        let answered = match self.leftover.lock() {
            Ok(mut slot) if !slot.answered => {
                slot.body = Some(body);
                return;
            }
            Ok(_) => true,
            Err(_) => false,
        };
        if answered {
            spawn_drain(body, self.policy);
        }
    }

    /// The answer's body is done (sent, or the connection went away).
    fn answered(&self) {
        let body = match self.leftover.lock() {
            Ok(mut slot) => {
                slot.answered = true;
                slot.body.take()
            }
            Err(_) => None,
        };
        if let Some(body) = body {
            spawn_drain(body, self.policy);
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.activity.request_done();
    }
}

/// Reads and discards what is left of a request body, within the budget,
/// on its own task; dropping it at the end resets an HTTP/2 stream with
/// `NO_ERROR` (the answer is complete by then).
fn spawn_drain(mut body: Incoming, policy: BodyPolicy) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let deadline = Instant::now() + policy.drain_time;
        let mut left = policy.drain_bytes;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                if n > left {
                    tracing::debug!("request body left unread: drain budget spent");
                    return;
                }
                left -= n;
            }
        }
    });
}

/// Wraps an incoming request for the router: its body gets the idle
/// time-out and the early-answer keeping; the returned [`Answer`] wraps
/// the router's response.
pub(crate) fn wrap(
    request: hyper::Request<Incoming>,
    policy: BodyPolicy,
    activity: Arc<Activity>,
    stats: Arc<HttpStats>,
) -> (hyper::Request<Body>, Answer) {
    activity.request_started();
    // A client that asked to be told before sending its body sends none
    // after a final answer: nothing to keep or drain.
    let expects_continue = request.headers().contains_key(hyper::header::EXPECT);
    let exchange = Arc::new(Exchange {
        policy,
        leftover: Mutex::new(Leftover::default()),
        activity,
    });
    let (parts, incoming) = request.into_parts();
    let body = RequestBody {
        inner: Some(incoming),
        idle: None,
        armed: false,
        timeout: policy.idle_timeout,
        stats,
        waits_for_continue: expects_continue,
        exchange: Some(exchange.clone()),
    };
    (
        hyper::Request::from_parts(parts, Body::new(body)),
        Answer { exchange },
    )
}

/// The part of an exchange that wraps the answer.
pub(crate) struct Answer {
    exchange: Arc<Exchange>,
}

impl Answer {
    /// The response with its body watched: when the body is done, the
    /// request body left unread (if any) is drained.
    pub(crate) fn watch(self, response: axum::response::Response) -> axum::response::Response {
        response.map(|inner| {
            Body::new(AnswerBody {
                inner,
                exchange: self.exchange,
            })
        })
    }
}

/// A request body with an idle time-out that hands itself back to its
/// exchange when dropped unread.
struct RequestBody {
    inner: Option<Incoming>,
    /// Made at the first wait, re-armed at each wait after a frame.
    idle: Option<Pin<Box<Sleep>>>,
    armed: bool,
    timeout: Duration,
    stats: Arc<HttpStats>,
    /// The client asked `Expect: 100-continue` and has not been told to
    /// send yet (hyper answers 100 at the first read of the body).
    waits_for_continue: bool,
    exchange: Option<Arc<Exchange>>,
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.waits_for_continue = false;
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let idle = this
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if !this.armed {
                    idle.as_mut().reset(Instant::now() + timeout);
                    this.armed = true;
                }
                if idle.as_mut().poll(cx).is_ready() {
                    // A stalled client is not drained: its body goes now.
                    this.inner = None;
                    this.stats.count_body_timeout();
                    tracing::debug!("request body timed out after {timeout:?}");
                    return Poll::Ready(Some(Err(Box::new(BodyTimedOut(timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let (Some(inner), Some(exchange)) = (self.inner.take(), self.exchange.take())
            && !inner.is_end_stream()
            && !self.waits_for_continue
        {
            exchange.left_unread(inner);
        }
    }
}

/// An answer's body that tells its exchange when it is done.
struct AnswerBody {
    inner: Body,
    exchange: Arc<Exchange>,
}

impl HttpBody for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.exchange.answered();
    }
}
