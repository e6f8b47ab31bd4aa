//! librosa's building blocks for mel spectrograms, shared by XKD's log-mel (librosa 0.8.1) and the
//! PANNs front end of CCL's audio teacher (librosa 0.9.2 behind torchlibrosa): the periodic Hann
//! window, the Slaney mel scale and the Slaney-normalised mel filterbank.

use candle_core::Result;

/// The periodic Hann window of length `n` (scipy's `get_window('hann', n, fftbins=True)`), in f64
/// as scipy computes it.
pub fn periodic_hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// librosa's Slaney mel scale (`hz_to_mel(f, htk=False)`): linear below 1 kHz, logarithmic above.
pub fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_mel = 1000.0 / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= 1000.0 {
        min_log_mel + (hz / 1000.0).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// The inverse of [`hz_to_mel`] (`mel_to_hz(m, htk=False)`).
pub fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_mel = 1000.0 / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        1000.0 * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// `np.linspace(start, stop, num)`: `i·step + start`, the last point set to `stop` exactly.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = num.saturating_sub(1).max(1) as f64;
    let step = (stop - start) / div;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if num > 1 {
        v[num - 1] = stop;
    }
    v
}

/// `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney')` as f32, row-major
/// [n_mels, n_fft/2+1]. librosa stores the triangles in f32 before multiplying by the Slaney norm
/// in f64; both roundings are reproduced.
///
/// The bin frequencies are `np.fft.rfftfreq(n_fft, 1/sr)` (librosa 0.9); librosa 0.8 used
/// `np.linspace(0, sr/2, n_fft/2+1)`. Both give the same doubles for the sizes used here (16 kHz
/// and 32 kHz with n_fft 1024; the `xkd/logmel` and PANNs fixtures check it).
pub fn slaney_mel_weights(
    sample_rate: usize,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
) -> Result<Vec<f32>> {
    if n_fft == 0 || n_mels == 0 || sample_rate == 0 || !(fmin >= 0.0 && fmin < fmax) {
        candle_core::bail!(
            "slaney mel filterbank: bad arguments sr {sample_rate}, n_fft {n_fft}, \
             n_mels {n_mels}, fmin {fmin}, fmax {fmax}"
        )
    }
    let bins = n_fft / 2 + 1;
    let val = 1.0 / (n_fft as f64 * (1.0 / sample_rate as f64));
    let fftfreqs: Vec<f64> = (0..bins).map(|k| k as f64 * val).collect();
    let mel_f: Vec<f64> = linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
        .into_iter()
        .map(mel_to_hz)
        .collect();
    let mut weights = vec![0f32; n_mels * bins];
    for (m, row) in weights.chunks_exact_mut(bins).enumerate() {
        let (lo_diff, hi_diff) = (mel_f[m + 1] - mel_f[m], mel_f[m + 2] - mel_f[m + 1]);
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (w, f) in row.iter_mut().zip(&fftfreqs) {
            let lower = -(mel_f[m] - f) / lo_diff;
            let upper = (mel_f[m + 2] - f) / hi_diff;
            let tri = 0f64.max(lower.min(upper)) as f32;
            *w = (tri as f64 * enorm) as f32;
        }
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips() {
        for hz in [0.0, 50.0, 999.0, 1000.0, 4321.0, 14000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9 * hz.max(1.0));
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn filters_are_triangles_of_unit_area_in_hz() -> Result<()> {
        let (sr, n_fft, n_mels) = (16000, 1024, 80);
        let w = slaney_mel_weights(sr, n_fft, n_mels, 0.0, 8000.0)?;
        let bins = n_fft / 2 + 1;
        let df = sr as f64 / n_fft as f64;
        for m in 10..n_mels {
            // Slaney norm: peak 2/(f_hi - f_lo), so the area of each triangle is 1 (in Hz).
            let area: f64 = w[m * bins..(m + 1) * bins]
                .iter()
                .map(|&x| x as f64 * df)
                .sum();
            assert!((area - 1.0).abs() < 0.05, "filter {m}: area {area}");
        }
        assert!(slaney_mel_weights(sr, n_fft, n_mels, 10.0, 5.0).is_err());
        Ok(())
    }
}
