//! mod_hello: a third-party featherd module. `GET /hello` answers with the greeting from
//! `hello.greeting` (merged per request over conditional blocks), and the request counter of
//! this worker.
use featherd_mod_api::{export_module, Handler, Hooks, Key, Module, ModuleConfig, Request, Value};
use std::cell::Cell;

#[derive(Clone, Default)]
pub struct HelloConfig {
    greeting: Option<String>,
}

impl ModuleConfig for HelloConfig {
    const KEYS: &'static [Key] = &[Key::string("hello.greeting")];
    fn apply(&mut self, _key: usize, v: &Value) -> Result<(), String> {
        let s = v.to_str()?;
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        self.greeting = Some(s.to_owned());
        Ok(())
    }
}

thread_local! {
    static SERVED: Cell<u64> = const { Cell::new(0) };
}

#[derive(Default)]
pub struct Hello;

impl Module for Hello {
    const NAME: &'static str = "mod_hello";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "says hello";
    const HOOKS: Hooks = Hooks::URI_CLEAN;
    type Config = HelloConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        log::info!("mod_hello loaded");
        Hello
    }

    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        if !req.path().starts_with(b"/hello") {
            return Handler::GoOn;
        }
        let greeting = req.config().greeting.clone().unwrap_or_else(|| "hello".into());
        let n = SERVED.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        req.set_status(200);
        req.set_response_header("Content-Type", "text/plain");
        req.append_body(format!("{greeting}, world ({n})\n").as_bytes());
        Handler::Finished
    }
}

export_module!(Hello);
