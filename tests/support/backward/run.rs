//! Seeded dO, and the forward + backward on the emulator as a trainer runs them: the forward
//! kernel's O and LSE feed the backward. Every output is poisoned (NaN) and guarded, so an element
//! a kernel does not write, or a write outside a view, fails.

use prefix_attn::attention::{
    backward_emulated_with, forward_emulated_with, BackwardChoice, HostBackwardTensors,
    HostTensors, KernelChoice, View,
};
use prefix_attn::emu::{Element as EmuElement, GuardedBuf, Schedule};
use prefix_attn::reference::Element;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::forward_support::check::{random_vec, Inputs, KernelElem, POISON_F32};
use crate::forward_support::edge::{from_layout, strides, to_layout, Layout};

use super::configs::plan_for_all;

/// dO uniform in [-1, 1), seeded (independent of the inputs' stream), rounded to `T`.
pub fn d_o_for<T: Element>(inp: &Inputs<T>, seed: u64) -> Vec<T> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xd0d0_d0d0);
    random_vec(&mut rng, inp.shape.q_len(), 1.0)
}

/// Dense results of one forward + backward.
pub struct Outputs<T> {
    pub o: Vec<T>,
    pub lse: Vec<f32>,
    pub dq: Vec<T>,
    pub dk: Vec<T>,
    pub dv: Vec<T>,
}

/// The forward (default kernel) then the backward under `choice`, every tensor in `layout`'s
/// memory order, on the emulator under `schedule`.
pub fn run<T: KernelElem + EmuElement>(
    layout: Layout,
    inp: &Inputs<T>,
    d_o: &[T],
    choice: BackwardChoice,
    schedule: Schedule,
) -> Result<Outputs<T>, String> {
    let sh = &inp.shape;
    let (qh, kvh) = (sh.q_heads, sh.kv_heads);
    let put =
        |dense: &[T], heads: usize| GuardedBuf::from_slice(&to_layout(layout, dense, sh, heads));
    let st = |heads: usize| strides(layout, sh, heads);
    let (q, k, v, g_o) = (
        put(&inp.q, qh),
        put(&inp.k, kvh),
        put(&inp.v, kvh),
        put(d_o, qh),
    );
    let plan = plan_for_all(inp.vis_end.clone());
    let mut o = GuardedBuf::filled(sh.q_len(), T::poison());
    let mut lse = GuardedBuf::filled(sh.lse_len(), POISON_F32);
    forward_emulated_with(
        &plan,
        sh,
        HostTensors {
            q: View::new(q.as_slice(), st(qh)),
            k: View::new(k.as_slice(), st(kvh)),
            v: View::new(v.as_slice(), st(kvh)),
            o: View::new(o.as_mut_slice(), st(qh)),
            lse: lse.as_mut_slice(),
        },
        inp.scale,
        KernelChoice::default(),
        schedule,
    )
    .map_err(|e| format!("forward: {e}"))?;
    let mut dq = GuardedBuf::filled(sh.q_len(), T::poison());
    let mut dk = GuardedBuf::filled(sh.kv_len(), T::poison());
    let mut dv = GuardedBuf::filled(sh.kv_len(), T::poison());
    backward_emulated_with(
        &plan,
        sh,
        HostBackwardTensors {
            q: View::new(q.as_slice(), st(qh)),
            k: View::new(k.as_slice(), st(kvh)),
            v: View::new(v.as_slice(), st(kvh)),
            o: View::new(o.as_slice(), st(qh)),
            lse: lse.as_slice(),
            d_o: View::new(g_o.as_slice(), st(qh)),
            dq: View::new(dq.as_mut_slice(), st(qh)),
            dk: View::new(dk.as_mut_slice(), st(kvh)),
            dv: View::new(dv.as_mut_slice(), st(kvh)),
        },
        inp.scale,
        choice,
        schedule,
    )
    .map_err(|e| format!("backward: {e}"))?;
    for (name, b) in [("o", &o), ("dq", &dq), ("dk", &dk), ("dv", &dv)] {
        b.check_guards(name)?;
    }
    lse.check_guards("lse")?;
    Ok(Outputs {
        o: from_layout(layout, o.as_slice(), sh, qh),
        lse: lse.to_vec(),
        dq: from_layout(layout, dq.as_slice(), sh, qh),
        dk: from_layout(layout, dk.as_slice(), sh, kvh),
        dv: from_layout(layout, dv.as_slice(), sh, kvh),
    })
}
