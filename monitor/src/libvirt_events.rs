//! libvirt domain events (lifecycle, tunable = vCPU re-pin) on their own thread; the names of changed VMs go to the refresher.
//!
//! `virt` 0.5.0 wraps the event loop (`virEventRegisterDefaultImpl`,
//! `virEventRunDefaultImpl`) but not `virConnectDomainEventRegisterAny`;
//! that one is called through `virt::sys` here. The callbacks run on the
//! `vmpm-libvirt-ev` thread, make no RPC (`virDomainGetName` reads the
//! domain object) and only send the VM's name on a channel: the refresher
//! thread looks the VM up and hands the result to the monitor's loop
//! (mpsc channel + eventfd). Neither the loop nor the control socket ever
//! waits on libvirt. The periodic refresh stays as the fallback for a
//! driver that sends no event (it compares the full pin map).
//!
//! The events are registered on the command connection itself: the test
//! driver keeps its state per connection, and one connection is also one
//! keepalive to watch (5 s interval, 3 missed: a hung libvirtd closes the
//! connection, and calls fail instead of hanging).

use std::ffi::CStr;
use std::os::raw::{c_int, c_void};
use std::sync::{mpsc, Mutex, OnceLock};

use virt::sys;

use crate::hv::HvError;
use crate::libvirt::Libvirt;
use virt::connect::Connect;

/// Keepalive: probe every 5 s, give up after 3 unanswered probes.
const KEEPALIVE_INTERVAL: i32 = 5;
const KEEPALIVE_COUNT: u32 = 3;

static EVENT_IMPL: OnceLock<bool> = OnceLock::new();

/// Registers libvirt's default event loop implementation (once per
/// process, before any connection is opened: remote connections only
/// dispatch events when it was there at open time).
pub fn register_event_impl() -> Result<(), HvError> {
    // SAFETY: plain libvirt call without arguments, made once.
    let ok = *EVENT_IMPL.get_or_init(|| unsafe { sys::virEventRegisterDefaultImpl() } == 0);
    if ok {
        Ok(())
    } else {
        Err(HvError::Other(
            "cannot register libvirt's event loop implementation".into(),
        ))
    }
}

/// Runs libvirt's event loop on a thread of its own (for the life of the
/// process).
pub fn spawn_event_loop() -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vmpm-libvirt-ev".into())
        .spawn(|| loop {
            // SAFETY: plain libvirt call; the default implementation was
            // registered before this thread started.
            if unsafe { sys::virEventRunDefaultImpl() } < 0 {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
}

/// Where a callback sends the VM's name.
type Sink = Mutex<mpsc::Sender<String>>;

/// The name of `dom`, sent to the sink behind `opaque`.
///
/// # Safety
/// `dom` is a live domain passed by libvirt to a callback; `opaque` is the
/// `Sink` registered with it, alive until its free callback runs.
unsafe fn send_name(dom: sys::virDomainPtr, opaque: *mut c_void) {
    if dom.is_null() || opaque.is_null() {
        return;
    }
    // SAFETY: per this function's contract.
    let name = unsafe { sys::virDomainGetName(dom) };
    if name.is_null() {
        return;
    }
    // SAFETY: libvirt returns a NUL-terminated string owned by `dom`.
    let name = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: per this function's contract.
    let sink = unsafe { &*(opaque as *const Sink) };
    if let Ok(tx) = sink.lock() {
        let _ = tx.send(name);
    }
}

unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    _event: c_int,
    _detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    // SAFETY: libvirt passes the domain and the opaque registered below.
    unsafe { send_name(dom, opaque) };
    0
}

unsafe extern "C" fn on_tunable(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    _params: sys::virTypedParameterPtr,
    _nparams: c_int,
    opaque: *mut c_void,
) {
    // SAFETY: as in `on_lifecycle`.
    unsafe { send_name(dom, opaque) };
}

unsafe extern "C" fn free_sink(opaque: *mut c_void) {
    if !opaque.is_null() {
        // SAFETY: `opaque` came from `Box::into_raw` in `watch`; libvirt
        // calls this once, when the callback is deregistered.
        drop(unsafe { Box::from_raw(opaque as *mut Sink) });
    }
}

/// The libvirt event subscriptions of one connection.
#[derive(Debug)]
pub struct Watch {
    /// Callback ids (lifecycle, tunable).
    pub ids: Vec<c_int>,
    /// Did the keepalive start? (local drivers have none)
    pub keepalive: bool,
}

/// Subscribes to lifecycle and tunable events of every domain of `hv`'s
/// connection (and of the connection it opens again after libvirtd
/// restarted); the names go to `tx`. The event loop must run
/// ([`spawn_event_loop`]).
pub fn watch(hv: &mut Libvirt, tx: &mpsc::Sender<String>) -> Result<Watch, HvError> {
    let w = subscribe(hv.connection(), tx)?;
    hv.set_event_sink(tx.clone());
    Ok(w)
}

/// [`watch`] on one connection.
pub(crate) fn subscribe(conn: &Connect, tx: &mpsc::Sender<String>) -> Result<Watch, HvError> {
    let keepalive = conn
        .set_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        .is_ok();
    let mut ids = Vec::new();
    let lifecycle: sys::virConnectDomainEventCallback = Some(on_lifecycle);
    let tunable: sys::virConnectDomainEventTunableCallback = Some(on_tunable);
    // SAFETY: libvirt's generic callback type stands for every event's
    // callback type; the event id tells libvirt which one it really is
    // (what C's VIR_DOMAIN_EVENT_CALLBACK cast does). Both are
    // Option<unsafe extern "C" fn> of the same size.
    let generic: [(c_int, sys::virConnectDomainEventGenericCallback); 2] = unsafe {
        [
            (
                sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
                std::mem::transmute::<
                    sys::virConnectDomainEventCallback,
                    sys::virConnectDomainEventGenericCallback,
                >(lifecycle),
            ),
            (
                sys::VIR_DOMAIN_EVENT_ID_TUNABLE as c_int,
                std::mem::transmute::<
                    sys::virConnectDomainEventTunableCallback,
                    sys::virConnectDomainEventGenericCallback,
                >(tunable),
            ),
        ]
    };
    for (event, cb) in generic {
        let sink: *mut Sink = Box::into_raw(Box::new(Mutex::new(tx.clone())));
        // SAFETY: the connection is live; `sink` is freed by `free_sink`
        // when libvirt drops the callback (or below if it refused it).
        let id = unsafe {
            sys::virConnectDomainEventRegisterAny(
                conn.as_ptr(),
                std::ptr::null_mut(),
                event,
                cb,
                sink.cast(),
                Some(free_sink),
            )
        };
        if id < 0 {
            // SAFETY: libvirt did not take `sink`.
            drop(unsafe { Box::from_raw(sink) });
            let e = virt::error::Error::last_error();
            return Err(HvError::Other(format!(
                "cannot subscribe to libvirt domain events: {}",
                e.message()
            )));
        }
        ids.push(id);
    }
    Ok(Watch { ids, keepalive })
}
