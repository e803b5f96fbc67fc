// Kernels tfjs-backend-wasm 4.22 lacks for training the built-in models. Without Conv2DBackpropFilter
// (the gradient of a convolution with respect to its filter) no convolutional model can train on
// wasm: the first step throws "Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'".
//
// The filter gradient is itself a convolution, computed with the backend's own Conv2D and
// Transpose kernels (so it stays in wasm, deterministic like every other wasm kernel):
//   dW[kh, kw, ci, co] = Σ_{b,i,j} x_padded[b, i·s + kh, j·s + kw, ci] · dy[b, i, j, co]
// is conv2d(X', F') with X' = x as [ci, H, W, b] (channels become the batch), F' = dy as
// [oh, ow, b, co] (the output gradient becomes the filter), the forward stride as the dilation,
// stride 1, and the forward padding; its output [ci, kh', kw', co] (kh' ≥ kh) is cropped to the
// filter's size and transposed back to [kh, kw, ci, co].
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { Tf } from './types.js';

type KernelFn = (args: { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: Record<string, unknown> }) => TensorInfo;

interface DisposingBackend {
  disposeData(dataId: object): void;
}

/** Registers the missing training kernels for 'wasm' (idempotent). */
export function registerWasmTrainingKernels(tf: Tf): void {
  if (tf.getKernel('Conv2DBackpropFilter', 'wasm')) return;
  const kernel = (name: string): KernelFn => {
    const k = tf.getKernel(name, 'wasm');
    if (!k) throw new Error(`tfjs-backend-wasm has no ${name} kernel`);
    return k.kernelFunc as unknown as KernelFn;
  };
  const conv2d = kernel('Conv2D');
  const transpose = kernel('Transpose');
  const slice = kernel('Slice');

  const config: KernelConfig = {
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: (({ inputs, backend, attrs }: Parameters<KernelFn>[0]) => {
      const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
      const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as {
        strides: number | [number, number];
        pad: Parameters<Tf['backend_util']['computeConv2DInfo']>[4];
        dataFormat: 'NHWC' | 'NCHW';
        dimRoundingMode?: 'floor' | 'round' | 'ceil';
        filterShape: [number, number, number, number];
      };
      if (dataFormat !== undefined && dataFormat !== 'NHWC') throw new Error(`Conv2DBackpropFilter on wasm supports NHWC only, got ${dataFormat}`);
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode);
      const [kh, kw] = [info.filterHeight, info.filterWidth];
      const { top, left } = info.padInfo;
      // Pad the bottom/right only as far as the forward pass reached: the output is then at least kh × kw.
      const bottom = Math.max(0, (info.outHeight - 1) * info.strideHeight + kh - info.inHeight - top);
      const right = Math.max(0, (info.outWidth - 1) * info.strideWidth + kw - info.inWidth - left);
      const b = backend as DisposingBackend;
      const temps: TensorInfo[] = [];
      try {
        const xT = transpose({ inputs: { x }, backend, attrs: { perm: [3, 1, 2, 0] } });
        temps.push(xT);
        const dyT = transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } });
        temps.push(dyT);
        let out = conv2d({
          inputs: { x: xT, filter: dyT },
          backend,
          attrs: {
            strides: [1, 1],
            pad: [
              [0, 0],
              [top, bottom],
              [left, right],
              [0, 0],
            ],
            dataFormat: 'NHWC',
            dilations: [info.strideHeight, info.strideWidth],
            dimRoundingMode: undefined,
          },
        });
        temps.push(out);
        if (out.shape[1] !== kh || out.shape[2] !== kw) {
          out = slice({ inputs: { x: out }, backend, attrs: { begin: [0, 0, 0, 0], size: [out.shape[0], kh, kw, out.shape[3]] } });
          temps.push(out);
        }
        const result = transpose({ inputs: { x: out }, backend, attrs: { perm: [1, 2, 0, 3] } });
        return result;
      } finally {
        for (const t of temps) b.disposeData(t.dataId);
      }
    }) as unknown as KernelConfig['kernelFunc'],
  };
  tf.registerKernel(config);
}
