//! Legacy HTTP+SSE transport of the fake server: `GET /sse` + `POST /messages…`.
//!
//! A session is one GET connection: it is created with the stream and dies with it. Every
//! server→client message (responses included) goes on that one stream. Wire details (endpoint
//! shape, line ends, pings, 307 on the slash-less path) follow [`EndpointStyle`].

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex, Weak};

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::conn::{self, Conn};
use super::util::{hex32, is_json_content, plain, query_param, utc_timestamp, uuid};
use super::{Backend, EndpointStyle, Shared};
use crate::mcp::{self, Kind, McpState, Outlet};
use crate::sse::{encode_comment, encode_event, LineEnd};

pub(crate) struct Legacy {
    shared: Arc<Shared>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

struct Session {
    mcp: Arc<McpState>,
    conn: Mutex<Option<Conn>>,
    line_end: LineEnd,
}

impl Session {
    /// Writes a `message` event; false when the stream is gone.
    fn send(&self, json: &str) -> bool {
        self.send_event("message", json)
    }

    fn send_event(&self, event: &str, data: &str) -> bool {
        let frame = encode_event(Some(event), None, None, data, self.line_end);
        let conn = self.conn.lock().unwrap();
        conn.as_ref().is_some_and(|c| c.send(frame))
    }
}

/// Legacy has one stream per session: related or not, everything goes there.
struct SessionOutlet(Arc<Session>);

impl Outlet for SessionOutlet {
    fn related(&self, json: String) {
        self.0.send(&json);
    }
    fn unrelated(&self, json: String) {
        self.0.send(&json);
    }
}

impl Legacy {
    pub fn new(shared: Arc<Shared>) -> Self {
        Legacy {
            shared,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn style(&self) -> EndpointStyle {
        self.shared.opts.endpoint_style
    }

    async fn connect(self: Arc<Self>, req: HttpRequest) -> HttpResponse {
        self.shared.record(&req, &Bytes::new());
        let style = self.style();
        let (id, line_end) = match style {
            EndpointStyle::Ts => (uuid(), LineEnd::Lf),
            EndpointStyle::Py => (hex32(), LineEnd::CrLf),
        };
        let weak: Weak<Legacy> = Arc::downgrade(&self);
        let hook_id = id.clone();
        // The session dies with its GET, whoever ends it.
        let (conn, body) = conn::open(&self.shared, move |_| {
            if let Some(me) = weak.upgrade() {
                if me.sessions.lock().unwrap().remove(&hook_id).is_some() {
                    me.shared.changed();
                }
            }
        });
        if self.shared.opts.send_endpoint {
            let endpoint = match style {
                EndpointStyle::Ts => format!("/messages?sessionId={id}"),
                EndpointStyle::Py => format!("/messages/?session_id={id}"),
            };
            conn.send(encode_event(
                Some("endpoint"),
                None,
                None,
                &endpoint,
                line_end,
            ));
        }
        if style == EndpointStyle::Py {
            let ping = || encode_comment(&format!("ping - {}", utc_timestamp()), LineEnd::CrLf);
            conn::keepalive(conn.writer(), self.shared.opts.ping_interval, ping);
        }
        let session = Arc::new(Session {
            mcp: Arc::new(McpState::new("fake-legacy", self.shared.clone())),
            conn: Mutex::new(Some(conn)),
            line_end,
        });
        self.sessions.lock().unwrap().insert(id, session);
        self.shared.changed();
        let mut resp = HttpResponse::Ok();
        resp.content_type("text/event-stream");
        match style {
            EndpointStyle::Ts => resp.insert_header(("cache-control", "no-cache, no-transform")),
            EndpointStyle::Py => resp
                .insert_header(("cache-control", "no-store"))
                .insert_header(("x-accel-buffering", "no")),
        };
        resp.streaming(body)
    }

    async fn post(self: Arc<Self>, req: HttpRequest, body: Bytes) -> HttpResponse {
        self.shared.record(&req, &body);
        let style = self.style();
        let query = req.query_string();
        if style == EndpointStyle::Py && req.path() == "/messages" {
            // Starlette's Mount("/messages/") redirects the slash-less path.
            let host = req.connection_info().host().to_string();
            let location = format!("http://{host}/messages/?{query}");
            return HttpResponse::TemporaryRedirect()
                .insert_header(("location", location))
                .finish();
        }
        let (param, missing) = match style {
            EndpointStyle::Ts => ("sessionId", "Missing sessionId parameter"),
            EndpointStyle::Py => ("session_id", "session_id is required"),
        };
        let Some(id) = query_param(query, param) else {
            return plain(400, missing);
        };
        if style == EndpointStyle::Py
            && !(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return plain(400, "Invalid session ID");
        }
        let Some(session) = self.sessions.lock().unwrap().get(id).cloned() else {
            return plain(404, "Could not find session");
        };
        if !is_json_content(&req) {
            return plain(400, "Unsupported Content-Type: expected application/json");
        }
        let message = match mcp::parse_body(&body) {
            Ok(b) if !b.batch => b.messages.into_iter().next().expect("one message"),
            // The 2024-11-05 schema has no batches: both SDK servers answer 400.
            _ => return plain(400, "Could not parse message"),
        };
        match message.kind() {
            Kind::Request => {
                let out: Rc<dyn Outlet> = Rc::new(SessionOutlet(session.clone()));
                actix_rt::spawn(async move {
                    if let Some(resp) = session.mcp.clone().on_request(message, out).await {
                        session.send(&resp);
                    }
                });
            }
            Kind::Notification => session.mcp.on_notification(&message),
            Kind::Response => {
                session.mcp.on_response(message);
            }
            Kind::Invalid => return plain(400, "Invalid message"),
        }
        plain(202, "Accepted")
    }
}

impl Backend for Legacy {
    fn configure(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        let (g, p) = (self.clone(), self.clone());
        cfg.route(
            self.shared.opts.endpoint_path(),
            web::get().to(move |req: HttpRequest| g.clone().connect(req)),
        );
        let post = move |req: HttpRequest, body: Bytes| p.clone().post(req, body);
        cfg.route("/messages", web::post().to(post.clone()));
        if self.style() == EndpointStyle::Py {
            cfg.route("/messages/", web::post().to(post));
        }
    }

    fn session_count(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }

    fn expire_sessions(&self) {
        let sessions: Vec<_> = self
            .sessions
            .lock()
            .unwrap()
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in sessions {
            if let Some(c) = s.conn.lock().unwrap().take() {
                c.close();
            }
        }
    }

    fn kill_streams(&self) {
        let sessions: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        for s in sessions {
            if let Some(c) = s.conn.lock().unwrap().take() {
                c.kill();
            }
        }
    }

    fn get_streams(&self) -> usize {
        let sessions: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        sessions
            .iter()
            .filter(|s| s.conn.lock().unwrap().is_some())
            .count()
    }

    fn send_unsolicited(&self, json: &str) -> usize {
        let sessions: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        sessions.iter().filter(|s| s.send(json)).count()
    }

    fn announce_endpoint_again(&self) -> usize {
        let sessions: Vec<_> = self
            .sessions
            .lock()
            .unwrap()
            .iter()
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        let style = self.style();
        sessions
            .iter()
            .filter(|(id, s)| {
                let endpoint = match style {
                    EndpointStyle::Ts => format!("/messages?sessionId={id}"),
                    EndpointStyle::Py => format!("/messages/?session_id={id}"),
                };
                s.send_event("endpoint", &endpoint)
            })
            .count()
    }
}
