//! Named trainable parameters with seeded initialisation.
//!
//! A [`ParamStore`] is a candle `VarMap` whose missing entries are created from avkd's seeded
//! generator. Models are built from `store.builder()` like any candle model: a name already present
//! (e.g. loaded from a pretrained checkpoint) is reused after a shape check, a new name is initialised
//! from its `Init` hint. Two modules built under the same prefix share the same `Var`s, which is how
//! XKD-MAS/MATS share transformer blocks.

use super::init;
use super::rng::SeededRng;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct ParamStore {
    varmap: VarMap,
    rng: Arc<Mutex<SeededRng>>,
    /// Every name a model asked for, to tell loaded-but-unused tensors from used ones.
    requested: Arc<Mutex<BTreeSet<String>>>,
    dtype: DType,
    device: Device,
}

impl ParamStore {
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        Self {
            varmap: VarMap::new(),
            rng: Arc::new(Mutex::new(SeededRng::new(seed))),
            requested: Arc::default(),
            dtype,
            device: device.clone(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), self.dtype, self.device.clone())
    }

    /// Puts `tensors` into the store (converted to the store's dtype and device) before the model is
    /// built, so that building picks them up: candle's analogue of `load_state_dict(strict=False)`.
    /// Existing entries are overwritten in place.
    pub fn insert_tensors(
        &self,
        tensors: impl IntoIterator<Item = (String, Tensor)>,
    ) -> Result<()> {
        let mut data = self.varmap.data().lock().unwrap();
        for (name, t) in tensors {
            let t = t.to_dtype(self.dtype)?.to_device(&self.device)?;
            match data.get(&name) {
                Some(var) => {
                    if var.shape() != t.shape() {
                        candle_core::bail!(
                            "parameter `{name}`: expected shape {:?}, found {:?}",
                            var.shape().dims(),
                            t.shape().dims()
                        )
                    }
                    var.set(&t)?
                }
                None => {
                    data.insert(name, Var::from_tensor(&t)?);
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Var> {
        self.varmap.data().lock().unwrap().get(name).cloned()
    }

    /// All parameters, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().unwrap();
        let sorted: BTreeMap<_, _> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        sorted.into_iter().collect()
    }

    /// A snapshot of every parameter as plain tensors (detached copies).
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.named_vars()
            .into_iter()
            .map(|(k, v)| Ok((k, v.as_detached_tensor().copy()?)))
            .collect()
    }

    /// The names models built from this store have asked for.
    pub fn requested_names(&self) -> BTreeSet<String> {
        self.requested.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn num_params(&self) -> usize {
        self.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    pub fn rng_state(&self) -> super::rng::RngState {
        self.rng.lock().unwrap().state()
    }
}

impl candle_nn::var_builder::SimpleBackend for ParamStore {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        if let Ok(mut requested) = self.requested.lock() {
            requested.insert(name.to_string());
        }
        let mut data = self.varmap.data().lock().unwrap();
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!(
                    "parameter `{name}`: the model expects shape {:?}, the loaded tensor has {:?}",
                    s.dims(),
                    var.shape().dims()
                )
            }
            return Ok(var.as_tensor().clone());
        }
        let t = init::sample(&mut self.rng.lock().unwrap(), &s, h, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        match self.varmap.data().lock().unwrap().get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("parameter `{name}` not found"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().unwrap().contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_parameters_and_sharing_by_name() -> Result<()> {
        let a = ParamStore::new(5, DType::F32, &Device::Cpu);
        let b = ParamStore::new(5, DType::F32, &Device::Cpu);
        let ta = a.builder().get_with_hints(
            (3, 4),
            "w",
            Init::Randn {
                mean: 0.,
                stdev: 1.,
            },
        )?;
        let tb = b.builder().get_with_hints(
            (3, 4),
            "w",
            Init::Randn {
                mean: 0.,
                stdev: 1.,
            },
        )?;
        assert_eq!(ta.to_vec2::<f32>()?, tb.to_vec2::<f32>()?);
        let again = a.builder().get_with_hints((3, 4), "w", Init::Const(0.))?;
        assert_eq!(ta.id(), again.id());
        assert!(a.builder().get((4, 3), "w").is_err());
        Ok(())
    }
}
