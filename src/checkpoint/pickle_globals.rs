//! What a checkpoint's pickle may name (GLOBAL / STACK_GLOBAL) and what "calling" those names builds
//! (REDUCE / NEWOBJ): only data, never code. Everything not on [`ALLOWED_GLOBALS`] is refused.

use super::pickle::{invalid, PResult, PickleError};
use super::pickle_value::{TensorRef, Value};

/// Globals a checkpoint may name. Everything else is refused.
pub const ALLOWED_GLOBALS: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("collections", "Counter"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "FloatStorage"),
    ("torch", "HalfStorage"),
    ("torch", "BFloat16Storage"),
    ("torch", "DoubleStorage"),
    ("torch", "LongStorage"),
    ("torch", "IntStorage"),
    ("torch", "ShortStorage"),
    ("torch", "CharStorage"),
    ("torch", "ByteStorage"),
    ("torch", "BoolStorage"),
    ("torch", "Size"),
    ("argparse", "Namespace"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
];

/// Resolves a GLOBAL against the allow-list; anything else is refused before it could be used.
pub(super) fn resolve_global(module: &str, name: &str) -> PResult<Value> {
    if ALLOWED_GLOBALS
        .iter()
        .any(|(m, n)| *m == module && *n == name)
    {
        Ok(Value::Global(module.to_string(), name.to_string()))
    } else {
        Err(PickleError::Refused(format!("{module}.{name}")))
    }
}

/// What "calling" an allow-listed global builds. Only [`Value::Global`]s can be called, and
/// those only come from [`resolve_global`], so a non-allow-listed call is unrepresentable.
pub(super) fn call(callable: Value, args: Vec<Value>, at: u64) -> PResult<Value> {
    let Value::Global(module, name) = callable else {
        return invalid(format!(
            "REDUCE at byte {at} calls a {}, not a class or function",
            callable.kind()
        ));
    };
    let mut args = args;
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") | ("collections", "Counter") => match args.pop() {
            None => Ok(Value::Dict(vec![])),
            Some(Value::Dict(d)) if args.is_empty() => Ok(Value::Dict(d)),
            Some(Value::List(items)) if args.is_empty() => {
                let mut out = Vec::with_capacity(items.len());
                for it in items {
                    match it {
                        Value::Tuple(mut kv) | Value::List(mut kv) if kv.len() == 2 => {
                            let v = kv.pop().unwrap_or(Value::None);
                            let k = kv.pop().unwrap_or(Value::None);
                            out.push((k, v));
                        }
                        _ => return invalid(format!("{name} at byte {at}: items are not pairs")),
                    }
                }
                Ok(Value::Dict(out))
            }
            Some(_) => invalid(format!("{name} at byte {at}: unexpected arguments")),
        },
        // v1 (torch < 0.4) takes the same first four arguments.
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            rebuild_tensor(args, at)
        }
        ("torch._utils", "_rebuild_parameter")
        | ("torch._utils", "_rebuild_parameter_with_state") => {
            // (data, requires_grad, backward_hooks[, state]): the parameter is its data.
            match args.into_iter().next() {
                Some(t @ Value::Tensor(_)) => Ok(t),
                _ => invalid(format!("_rebuild_parameter at byte {at} without a tensor")),
            }
        }
        ("torch", "Size") => match args.pop() {
            Some(Value::Tuple(t)) | Some(Value::List(t)) if args.is_empty() => Ok(Value::Tuple(t)),
            None => Ok(Value::Tuple(vec![])),
            _ => invalid(format!("torch.Size at byte {at}: unexpected arguments")),
        },
        ("builtins", "set")
        | ("builtins", "frozenset")
        | ("__builtin__", "set")
        | ("__builtin__", "frozenset") => match args.pop() {
            None => Ok(Value::Set(vec![])),
            Some(Value::List(v)) | Some(Value::Tuple(v)) | Some(Value::Set(v))
                if args.is_empty() =>
            {
                Ok(Value::Set(v))
            }
            _ => invalid(format!("{name} at byte {at}: unexpected arguments")),
        },
        _ => Ok(Value::Object {
            module,
            name,
            args,
            state: None,
        }),
    }
}

fn non_negative(v: &Value, what: &str, at: u64) -> PResult<usize> {
    match v {
        Value::Int(i) => usize::try_from(*i)
            .map_err(|_| PickleError::Invalid(format!("{what} at byte {at} is negative: {i}"))),
        other => invalid(format!(
            "{what} at byte {at} is a {}, not an int",
            other.kind()
        )),
    }
}

fn int_tuple(v: &Value, what: &str, at: u64) -> PResult<Vec<usize>> {
    match v {
        Value::Tuple(t) | Value::List(t) => t.iter().map(|x| non_negative(x, what, at)).collect(),
        other => invalid(format!(
            "{what} at byte {at} is a {}, not a tuple",
            other.kind()
        )),
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
fn rebuild_tensor(args: Vec<Value>, at: u64) -> PResult<Value> {
    let [storage, offset, size, stride, ..] = args.as_slice() else {
        return invalid(format!(
            "_rebuild_tensor_v2 at byte {at} has {} arguments",
            args.len()
        ));
    };
    let Value::Storage(storage) = storage else {
        return invalid(format!(
            "_rebuild_tensor_v2 at byte {at}: first argument is a {}, not a storage",
            storage.kind()
        ));
    };
    let offset = non_negative(offset, "storage offset", at)?;
    let shape = int_tuple(size, "tensor size", at)?;
    let stride = int_tuple(stride, "tensor stride", at)?;
    if shape.len() != stride.len() {
        return invalid(format!(
            "_rebuild_tensor_v2 at byte {at}: size {shape:?} and stride {stride:?} differ in rank"
        ));
    }
    Ok(Value::Tensor(TensorRef {
        storage: storage.clone(),
        offset,
        shape,
        stride,
    }))
}
