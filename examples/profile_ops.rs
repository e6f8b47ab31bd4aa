// Temporary: where does ViT-B backward time go at batch 4 (393 tokens)?
use avkd::bench::time_it;
use avkd::nn::linear::Linear;
use avkd::nn::rng::SeededRng;
use candle_core::{Module, Result, Var};

fn main() -> Result<()> {
    let dev = candle_core::Device::Cpu;
    let mut rng = SeededRng::new(0);
    let n = 4 * 393;
    let x = Var::from_tensor(&rng.normal((n, 768), 0., 1., &dev)?)?;
    let w = Var::from_tensor(&rng.normal((3072, 768), 0., 0.02, &dev)?)?;
    let lin = Linear::from_weights(w.as_tensor().clone(), None);
    let t = time_it("linear 768->3072 fwd", 3, || {
        lin.forward(&x)?;
        Ok(())
    })?;
    println!("{t:?}");
    let t = time_it("linear 768->3072 fwd+bwd", 3, || {
        lin.forward(&x)?.sum_all()?.backward()?;
        Ok(())
    })?;
    println!("{t:?}");
    let h = Var::from_tensor(&rng.normal((n, 3072), 0., 1., &dev)?)?;
    let t = time_it("avkd gelu fwd+bwd", 3, || {
        avkd::nn::gelu::gelu_erf(&h)?.sum_all()?.backward()?;
        Ok(())
    })?;
    println!("{t:?}");
    let t = time_it("avkd gelu fwd", 3, || {
        avkd::nn::gelu::gelu_erf(&h)?;
        Ok(())
    })?;
    println!("{t:?}");
    let t = time_it("harness: (h*1).sum_all bwd", 3, || {
        (h.as_tensor() * 1.0)?.sum_all()?.backward()?;
        Ok(())
    })?;
    println!("{t:?}");
    let t = time_it("gelu fwd", 3, || {
        h.gelu_erf()?;
        Ok(())
    })?;
    println!("{t:?}");
    let t = time_it("gelu fwd+bwd", 3, || {
        h.gelu_erf()?.sum_all()?.backward()?;
        Ok(())
    })?;
    println!("{t:?}");
    let q = Var::from_tensor(&rng.normal((4, 12, 393, 64), 0., 1., &dev)?)?;
    let k = Var::from_tensor(&rng.normal((4, 12, 393, 64), 0., 1., &dev)?)?;
    let t = time_it("q@kT fwd", 3, || {
        q.matmul(&k.t()?)?;
        Ok(())
    })?;
    println!("{t:?}");
    let t = time_it("q@kT fwd+bwd", 3, || {
        q.matmul(&k.t()?)?.sum_all()?.backward()?;
        Ok(())
    })?;
    println!("{t:?}");
    let a = Var::from_tensor(&rng.normal((4, 12, 393, 393), 0., 1., &dev)?)?;
    let t = time_it("softmax fwd+bwd", 3, || {
        avkd::nn::softmax::softmax_last_dim(&a)?
            .sum_all()?
            .backward()?;
        Ok(())
    })?;
    println!("{t:?}");
    let y = Var::from_tensor(&rng.normal((n, 768), 0., 1., &dev)?)?;
    let wln = Var::from_tensor(&rng.normal(768, 1., 0.1, &dev)?)?;
    let t = time_it("layernorm fwd+bwd", 3, || {
        avkd::nn::norm::layer_norm(&y, Some(&wln), Some(&wln), 1e-5)?
            .sum_all()?
            .backward()?;
        Ok(())
    })?;
    println!("{t:?}");
    Ok(())
}
