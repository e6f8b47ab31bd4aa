// Temporary: gemm orientation costs for the Linear weight gradient.
use avkd::bench::time_it;
use avkd::nn::rng::SeededRng;
use candle_core::Result;
fn main() -> Result<()> {
    let dev = candle_core::Device::Cpu;
    let mut rng = SeededRng::new(0);
    let x = rng.normal((1572, 768), 0., 1., &dev)?;
    let g = rng.normal((1572, 3072), 0., 1., &dev)?;
    let w = rng.normal((3072, 768), 0., 1., &dev)?;
    println!(
        "{:?}",
        time_it("A g^T@x", 3, || {
            g.t()?.matmul(&x)?;
            Ok(())
        })?
    );
    println!(
        "{:?}",
        time_it("B x^T@g", 3, || {
            x.t()?.matmul(&g)?;
            Ok(())
        })?
    );
    println!(
        "{:?}",
        time_it("B + t().contiguous()", 3, || {
            x.t()?.matmul(&g)?.t()?.contiguous()?;
            Ok(())
        })?
    );
    println!(
        "{:?}",
        time_it("C g^T contiguous @x", 3, || {
            g.t()?.contiguous()?.matmul(&x)?;
            Ok(())
        })?
    );
    println!(
        "{:?}",
        time_it("dx g@w", 3, || {
            g.matmul(&w)?;
            Ok(())
        })?
    );
    println!(
        "{:?}",
        time_it("fwd x@w^T", 3, || {
            x.matmul(&w.t()?)?;
            Ok(())
        })?
    );
    Ok(())
}
