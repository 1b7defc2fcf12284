//! The few JavaScript globals the adapter calls, looked up on `globalThis` so that the same code runs
//! in a window, a worker and Node (which has no `window`).

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};

fn global_function(name: &str) -> Result<Function, JsValue> {
    Reflect::get(&js_sys::global(), &JsValue::from_str(name))?
        .dyn_into::<Function>()
        .map_err(|_| JsValue::from_str(&format!("globalThis.{name} is not a function")))
}

/// `fetch(request)`.
pub(crate) fn fetch(request: &web_sys::Request) -> Result<Promise, JsValue> {
    global_function("fetch")?
        .call1(&js_sys::global(), request)?
        .dyn_into::<Promise>()
}

/// `setTimeout(callback, ms)`: the timer's handle (a number in browsers, an object in Node).
pub(crate) fn set_timeout(callback: &JsValue, ms: f64) -> Result<JsValue, JsValue> {
    global_function("setTimeout")?.call2(&js_sys::global(), callback, &JsValue::from_f64(ms))
}

/// `clearTimeout(handle)`.
pub(crate) fn clear_timeout(handle: &JsValue) {
    if let Ok(clear) = global_function("clearTimeout") {
        let _ = clear.call1(&js_sys::global(), handle);
    }
}

/// A readable description of a thrown value (`TypeError: Failed to fetch`, `AbortError: ...`).
pub(crate) fn describe(error: &JsValue) -> String {
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return format!(
            "{}: {}",
            String::from(error.name()),
            String::from(error.message())
        );
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}
