//! A data-only unpickler for PyTorch checkpoints (pickle protocols 2 to 5, plus the few text
//! opcodes old files use).
//!
//! Python's unpickler imports whatever module.attribute a pickle names (GLOBAL / STACK_GLOBAL) and
//! calls it (REDUCE / NEWOBJ), which is how a malicious checkpoint runs `os.system`. This one never
//! executes anything: a global is only accepted when it is on [`ALLOWED_GLOBALS`] (what real
//! checkpoints contain), and even then "calling" it only builds a plain [`Value`]. Anything else is
//! refused with an error naming the global.
//!
//! Limitations, on purpose: the memo stores copies, so a container that is mutated after being
//! memoized and fetched again later shows its state at memoization time (torch checkpoints do not
//! rely on this: tensors and strings, the values that are shared, are immutable); nesting is
//! limited to [`MAX_DEPTH`] and memo copies to a budget so that a crafted file cannot exhaust the
//! stack or the memory.

pub use super::pickle_globals::ALLOWED_GLOBALS;
use super::pickle_globals::{call, resolve_global};
pub use super::pickle_value::{StorageDtype, StorageRef, TensorRef, Value};
use std::io::Read;

/// Deepest nesting of containers accepted (dropping or walking deeper values could overflow the stack).
pub const MAX_DEPTH: usize = 200;

/// Error of the unpickler; the caller adds the file name.
#[derive(Debug, Clone, PartialEq)]
pub enum PickleError {
    /// The pickle names a global that is not data (e.g. `posix.system`).
    Refused(String),
    /// Malformed, truncated or unsupported pickle data.
    Invalid(String),
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PickleError::Refused(g) => {
                write!(f, "the pickle asks for `{g}`, which is not data")
            }
            PickleError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

pub(super) type PResult<T> = std::result::Result<T, PickleError>;

pub(super) fn invalid<T>(msg: impl Into<String>) -> PResult<T> {
    Err(PickleError::Invalid(msg.into()))
}

/// Items on the unpickler's stack: values, or the MARK separator.
#[derive(Debug)]
enum Item {
    Mark,
    Value(Value),
}

/// A reader that counts the bytes consumed, so errors can give an offset and the legacy format can
/// tell where a pickle ends.
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Counting<R> {
    fn bytes(&mut self, n: usize, what: &str) -> PResult<Vec<u8>> {
        // Read in chunks so that a corrupt length cannot make us allocate gigabytes up front.
        let mut out = Vec::with_capacity(n.min(1 << 20));
        let mut taken = (&mut self.inner).take(n as u64);
        let got = taken
            .read_to_end(&mut out)
            .map_err(|e| PickleError::Invalid(format!("read error in {what}: {e}")))?;
        self.pos = self.pos.saturating_add(got as u64);
        if got != n {
            return invalid(format!(
                "pickle truncated in {what} at byte {}: needs {n} bytes, {got} remain",
                self.pos
            ));
        }
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> PResult<[u8; N]> {
        let v = self.bytes(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> PResult<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A text line (protocol 0 arguments), without the newline.
    fn line(&mut self, what: &str) -> PResult<String> {
        let mut out = Vec::new();
        loop {
            let b = self.u8(what)?;
            if b == b'\n' {
                break;
            }
            if out.len() > 4096 {
                return invalid(format!("line too long in {what}"));
            }
            out.push(b);
        }
        String::from_utf8(out).map_err(|_| PickleError::Invalid(format!("{what}: not UTF-8")))
    }
}

fn le_len(bytes: &[u8], what: &str) -> PResult<usize> {
    let mut v: u64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        v |= (*b as u64) << (8 * i);
    }
    usize::try_from(v).map_err(|_| PickleError::Invalid(format!("{what}: length {v} too large")))
}

/// Decodes a little-endian two's complement integer (LONG1 / LONG4).
fn decode_long(bytes: Vec<u8>) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
        buf[..bytes.len()].copy_from_slice(&bytes);
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(bytes)
}

/// Reads one pickle (up to STOP) from `reader`. Persistent ids are handed to `persistent_load`,
/// which turns them into values (storages). Returns the value and the number of bytes consumed.
pub fn load<R: Read>(
    reader: R,
    persistent_load: &mut dyn FnMut(Value) -> PResult<Value>,
) -> PResult<(Value, u64)> {
    let mut r = Counting {
        inner: reader,
        pos: 0,
    };
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: std::collections::HashMap<u64, Value> = std::collections::HashMap::new();
    // Total nodes copied out of the memo: bounds the work a crafted file can cause.
    let mut memo_budget: usize = 20_000_000;

    loop {
        let at = r.pos;
        let op = r.u8("opcode")?;
        match op {
            0x80 => {
                // PROTO
                let p = r.u8("PROTO")?;
                if p > 5 {
                    return invalid(format!("unsupported pickle protocol {p}"));
                }
            }
            0x95 => {
                // FRAME: a length prefix for buffering only; the opcodes follow inline.
                r.array::<8>("FRAME")?;
            }
            b'.' => {
                // STOP
                let v = pop_value(&mut stack, "STOP")?;
                return Ok((v, r.pos));
            }
            b'(' => stack.push(Item::Mark),
            b'0' => {
                pop_item(&mut stack, "POP")?;
            }
            b'1' => {
                pop_mark(&mut stack, "POP_MARK")?;
            }
            b'2' => {
                let v = match stack.last() {
                    Some(Item::Value(v)) => budget_clone(v, &mut memo_budget)?,
                    _ => return invalid("DUP on an empty stack"),
                };
                push_checked(&mut stack, v)?;
            }
            b'N' => stack.push(Item::Value(Value::None)),
            0x88 => stack.push(Item::Value(Value::Bool(true))),
            0x89 => stack.push(Item::Value(Value::Bool(false))),
            b'J' => {
                let v = i32::from_le_bytes(r.array::<4>("BININT")?);
                stack.push(Item::Value(Value::Int(v as i64)));
            }
            b'K' => {
                let v = r.u8("BININT1")?;
                stack.push(Item::Value(Value::Int(v as i64)));
            }
            b'M' => {
                let v = u16::from_le_bytes(r.array::<2>("BININT2")?);
                stack.push(Item::Value(Value::Int(v as i64)));
            }
            0x8a => {
                let n = r.u8("LONG1")? as usize;
                let b = r.bytes(n, "LONG1")?;
                stack.push(Item::Value(decode_long(b)));
            }
            0x8b => {
                let n = i32::from_le_bytes(r.array::<4>("LONG4")?);
                let n = usize::try_from(n)
                    .map_err(|_| PickleError::Invalid("LONG4: negative length".into()))?;
                let b = r.bytes(n, "LONG4")?;
                stack.push(Item::Value(decode_long(b)));
            }
            b'I' | b'L' => {
                let line = r.line("INT")?;
                let t = line.trim_end_matches('L');
                let v = match t {
                    "01" => Value::Bool(true),
                    "00" => Value::Bool(false),
                    _ => Value::Int(t.parse::<i64>().map_err(|_| {
                        PickleError::Invalid(format!("INT: cannot parse `{line}`"))
                    })?),
                };
                stack.push(Item::Value(v));
            }
            b'F' => {
                let line = r.line("FLOAT")?;
                let v = line
                    .parse::<f64>()
                    .map_err(|_| PickleError::Invalid(format!("FLOAT: cannot parse `{line}`")))?;
                stack.push(Item::Value(Value::Float(v)));
            }
            b'G' => {
                let v = f64::from_be_bytes(r.array::<8>("BINFLOAT")?);
                stack.push(Item::Value(Value::Float(v)));
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => le_len(&r.array::<4>("BINUNICODE")?, "BINUNICODE")?,
                    0x8c => r.u8("SHORT_BINUNICODE")? as usize,
                    _ => le_len(&r.array::<8>("BINUNICODE8")?, "BINUNICODE8")?,
                };
                let b = r.bytes(n, "string")?;
                let s = String::from_utf8(b).map_err(|_| {
                    PickleError::Invalid(format!("string at byte {at} is not UTF-8"))
                })?;
                stack.push(Item::Value(Value::Str(s)));
            }
            b'T' | b'U' => {
                // Python 2 str: bytes that old checkpoints use for names; decoded as Latin-1.
                let n = if op == b'T' {
                    le_len(&r.array::<4>("BINSTRING")?, "BINSTRING")?
                } else {
                    r.u8("SHORT_BINSTRING")? as usize
                };
                let b = r.bytes(n, "string")?;
                stack.push(Item::Value(Value::Str(
                    b.iter().map(|&c| c as char).collect(),
                )));
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                let n = match op {
                    b'B' => le_len(&r.array::<4>("BINBYTES")?, "BINBYTES")?,
                    b'C' => r.u8("SHORT_BINBYTES")? as usize,
                    _ => le_len(&r.array::<8>("BINBYTES8")?, "BINBYTES8")?,
                };
                let b = r.bytes(n, "bytes")?;
                stack.push(Item::Value(Value::Bytes(b)));
            }
            b')' => stack.push(Item::Value(Value::Tuple(vec![]))),
            b't' => {
                let items = pop_mark(&mut stack, "TUPLE")?;
                push_checked(&mut stack, Value::Tuple(items))?;
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(pop_value(&mut stack, "TUPLEn")?);
                }
                items.reverse();
                push_checked(&mut stack, Value::Tuple(items))?;
            }
            b']' => stack.push(Item::Value(Value::List(vec![]))),
            b'l' => {
                let items = pop_mark(&mut stack, "LIST")?;
                push_checked(&mut stack, Value::List(items))?;
            }
            b'a' => {
                let v = pop_value(&mut stack, "APPEND")?;
                check_depth(&v)?;
                match stack.last_mut() {
                    Some(Item::Value(Value::List(l))) => l.push(v),
                    Some(Item::Value(Value::Set(l))) => l.push(v),
                    _ => return invalid(format!("APPEND at byte {at} without a list")),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack, "APPENDS")?;
                for v in &items {
                    check_depth(v)?;
                }
                match stack.last_mut() {
                    Some(Item::Value(Value::List(l))) => l.extend(items),
                    _ => return invalid(format!("APPENDS at byte {at} without a list")),
                }
            }
            b'}' => stack.push(Item::Value(Value::Dict(vec![]))),
            b'd' => {
                let items = pop_mark(&mut stack, "DICT")?;
                let pairs = pairs(items, "DICT")?;
                push_checked(&mut stack, Value::Dict(pairs))?;
            }
            b's' => {
                let v = pop_value(&mut stack, "SETITEM")?;
                let k = pop_value(&mut stack, "SETITEM")?;
                check_depth(&k)?;
                check_depth(&v)?;
                set_items(&mut stack, vec![(k, v)], at)?;
            }
            b'u' => {
                let items = pop_mark(&mut stack, "SETITEMS")?;
                for v in &items {
                    check_depth(v)?;
                }
                let p = pairs(items, "SETITEMS")?;
                set_items(&mut stack, p, at)?;
            }
            0x8f => stack.push(Item::Value(Value::Set(vec![]))),
            0x90 => {
                let items = pop_mark(&mut stack, "ADDITEMS")?;
                for v in &items {
                    check_depth(v)?;
                }
                match stack.last_mut() {
                    Some(Item::Value(Value::Set(l))) => l.extend(items),
                    _ => return invalid(format!("ADDITEMS at byte {at} without a set")),
                }
            }
            0x91 => {
                let items = pop_mark(&mut stack, "FROZENSET")?;
                push_checked(&mut stack, Value::Set(items))?;
            }
            b'c' => {
                let module = r.line("GLOBAL")?;
                let name = r.line("GLOBAL")?;
                stack.push(Item::Value(resolve_global(&module, &name)?));
            }
            0x93 => {
                let name = pop_value(&mut stack, "STACK_GLOBAL")?;
                let module = pop_value(&mut stack, "STACK_GLOBAL")?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return invalid(format!("STACK_GLOBAL at byte {at} without two strings"));
                };
                stack.push(Item::Value(resolve_global(&module, &name)?));
            }
            b'R' => {
                let args = pop_value(&mut stack, "REDUCE")?;
                let callable = pop_value(&mut stack, "REDUCE")?;
                let args = match args {
                    Value::Tuple(a) => a,
                    other => {
                        return invalid(format!(
                            "REDUCE at byte {at}: arguments are a {}, not a tuple",
                            other.kind()
                        ))
                    }
                };
                let v = call(callable, args, at)?;
                push_checked(&mut stack, v)?;
            }
            0x81 => {
                // NEWOBJ: cls.__new__(cls, *args), treated like a call to the class.
                let args = pop_value(&mut stack, "NEWOBJ")?;
                let cls = pop_value(&mut stack, "NEWOBJ")?;
                let Value::Tuple(args) = args else {
                    return invalid(format!("NEWOBJ at byte {at}: arguments are not a tuple"));
                };
                let v = call(cls, args, at)?;
                push_checked(&mut stack, v)?;
            }
            0x92 => {
                // NEWOBJ_EX: keyword arguments are dropped (no allow-listed class takes any).
                let _kwargs = pop_value(&mut stack, "NEWOBJ_EX")?;
                let args = pop_value(&mut stack, "NEWOBJ_EX")?;
                let cls = pop_value(&mut stack, "NEWOBJ_EX")?;
                let Value::Tuple(args) = args else {
                    return invalid(format!("NEWOBJ_EX at byte {at}: arguments are not a tuple"));
                };
                let v = call(cls, args, at)?;
                push_checked(&mut stack, v)?;
            }
            b'b' => {
                let state = pop_value(&mut stack, "BUILD")?;
                check_depth(&state)?;
                match stack.last_mut() {
                    // OrderedDict's `_metadata` and tensor/parameter states carry no weights.
                    Some(Item::Value(Value::Dict(_)))
                    | Some(Item::Value(Value::Tensor(_)))
                    | Some(Item::Value(Value::Set(_))) => {}
                    Some(Item::Value(Value::Object { state: s, .. })) => *s = Some(Box::new(state)),
                    Some(Item::Value(other)) => {
                        return invalid(format!("BUILD at byte {at} on a {}", other.kind()))
                    }
                    _ => return invalid(format!("BUILD at byte {at} on an empty stack")),
                }
            }
            b'Q' => {
                let pid = pop_value(&mut stack, "BINPERSID")?;
                let v = persistent_load(pid)?;
                stack.push(Item::Value(v));
            }
            b'P' => {
                let pid = r.line("PERSID")?;
                let v = persistent_load(Value::Str(pid))?;
                stack.push(Item::Value(v));
            }
            b'h' | b'j' | b'g' => {
                let idx = match op {
                    b'h' => r.u8("BINGET")? as u64,
                    b'j' => u32::from_le_bytes(r.array::<4>("LONG_BINGET")?) as u64,
                    _ => r
                        .line("GET")?
                        .parse::<u64>()
                        .map_err(|_| PickleError::Invalid("GET: bad index".into()))?,
                };
                let Some(v) = memo.get(&idx) else {
                    return invalid(format!(
                        "memo entry {idx} read at byte {at} was never stored"
                    ));
                };
                let v = budget_clone(v, &mut memo_budget)?;
                stack.push(Item::Value(v));
            }
            b'q' | b'r' | b'p' | 0x94 => {
                let idx = match op {
                    b'q' => r.u8("BINPUT")? as u64,
                    b'r' => u32::from_le_bytes(r.array::<4>("LONG_BINPUT")?) as u64,
                    b'p' => r
                        .line("PUT")?
                        .parse::<u64>()
                        .map_err(|_| PickleError::Invalid("PUT: bad index".into()))?,
                    _ => memo.len() as u64,
                };
                let v = match stack.last() {
                    Some(Item::Value(v)) => budget_clone(v, &mut memo_budget)?,
                    _ => return invalid(format!("memo store at byte {at} with nothing to store")),
                };
                memo.insert(idx, v);
            }
            b'i' | b'o' => {
                return invalid(format!(
                    "opcode INST/OBJ at byte {at} (protocol 0/1 object creation) is not supported"
                ))
            }
            0x82..=0x84 => return invalid(format!("extension-registry opcode at byte {at}")),
            0x97 | 0x98 => return invalid(format!("out-of-band buffer opcode at byte {at}")),
            other => {
                return invalid(format!(
                    "unknown pickle opcode 0x{other:02x} at byte {at} (corrupt file?)"
                ))
            }
        }
    }
}

fn pop_item(stack: &mut Vec<Item>, what: &str) -> PResult<Item> {
    stack
        .pop()
        .ok_or_else(|| PickleError::Invalid(format!("{what} on an empty stack")))
}

fn pop_value(stack: &mut Vec<Item>, what: &str) -> PResult<Value> {
    match pop_item(stack, what)? {
        Item::Value(v) => Ok(v),
        Item::Mark => invalid(format!("{what} found a MARK where a value was expected")),
    }
}

/// Pops everything down to the topmost MARK, in stack order.
fn pop_mark(stack: &mut Vec<Item>, what: &str) -> PResult<Vec<Value>> {
    let Some(pos) = stack.iter().rposition(|i| matches!(i, Item::Mark)) else {
        return invalid(format!("{what} without a MARK"));
    };
    let items = stack.split_off(pos + 1);
    stack.pop();
    Ok(items
        .into_iter()
        .filter_map(|i| match i {
            Item::Value(v) => Some(v),
            Item::Mark => None,
        })
        .collect())
}

fn pairs(items: Vec<Value>, what: &str) -> PResult<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return invalid(format!("{what} with an odd number of items"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// SETITEM(S) on the dict on top of the stack. Keys are appended without a duplicate check: a
/// pickled dict cannot hold a key twice, and checking would make crafted files quadratic.
fn set_items(stack: &mut [Item], items: Vec<(Value, Value)>, at: u64) -> PResult<()> {
    match stack.last_mut() {
        Some(Item::Value(Value::Dict(d))) => {
            d.extend(items);
            Ok(())
        }
        _ => invalid(format!("SETITEM at byte {at} without a dict")),
    }
}

/// Copies a value for the memo or DUP, charging its size to `budget` so that a crafted pickle
/// cannot make the copies grow without bound.
fn budget_clone(v: &Value, budget: &mut usize) -> PResult<Value> {
    let n = v.count_nodes(*budget);
    if n > *budget {
        return invalid("pickle copies too much data through its memo");
    }
    *budget -= n;
    Ok(v.clone())
}

fn check_depth(v: &Value) -> PResult<()> {
    if v.depth(MAX_DEPTH + 1) > MAX_DEPTH {
        return invalid(format!("values nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(())
}

fn push_checked(stack: &mut Vec<Item>, v: Value) -> PResult<()> {
    check_depth(&v)?;
    stack.push(Item::Value(v));
    Ok(())
}
