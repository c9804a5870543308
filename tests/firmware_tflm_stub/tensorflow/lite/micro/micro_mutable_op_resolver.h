// Test stub of tflite-micro's MicroMutableOpResolver: same Add* names, capacity check, and a
// record of what was registered (for tests only; see tests/firmware_tflm_stub/README.md).
#ifndef TFLM_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
#define TFLM_STUB_MICRO_MUTABLE_OP_RESOLVER_H_

#include "tensorflow/lite/c/common.h"

#define TFLM_STUB_OPS(X)                                                                      \
  X(Abs) X(Add) X(AddN) X(ArgMax) X(ArgMin) X(AveragePool2D) X(BatchMatMul) X(BatchToSpaceNd)  \
  X(Cast) X(Ceil) X(Concatenation) X(Conv2D) X(Cos) X(CumSum) X(DepthToSpace)                  \
  X(DepthwiseConv2D) X(Dequantize) X(Div) X(Elu) X(Equal) X(Exp) X(ExpandDims) X(Fill)          \
  X(Floor) X(FloorDiv) X(FloorMod) X(FullyConnected) X(Gather) X(GatherNd) X(Greater)         \
  X(GreaterEqual) X(HardSwish) X(L2Normalization) X(L2Pool2D) X(LeakyRelu) X(Less)            \
  X(LessEqual) X(Log) X(LogSoftmax) X(LogicalAnd) X(LogicalNot) X(LogicalOr) X(Logistic)      \
  X(MaxPool2D) X(Maximum) X(Mean) X(Minimum) X(Mul) X(Neg) X(NotEqual) X(Pack) X(Pad)         \
  X(PadV2) X(Prelu) X(Quantize) X(ReduceMax) X(Relu) X(Relu6) X(Reshape) X(ResizeBilinear)    \
  X(ResizeNearestNeighbor) X(Round) X(Rsqrt) X(SelectV2) X(Shape) X(Sin) X(Slice) X(Softmax)  \
  X(SpaceToBatchNd) X(SpaceToDepth) X(Split) X(SplitV) X(Sqrt) X(Square)                      \
  X(SquaredDifference) X(Squeeze) X(StridedSlice) X(Sub) X(Sum) X(Svdf) X(Tanh) X(Transpose)  \
  X(TransposeConv) X(UnidirectionalSequenceLSTM) X(Unpack) X(ZerosLike) X(BroadcastArgs)        \
  X(BroadcastTo) X(EmbeddingLookup) X(MirrorPad) X(ReduceMin) X(ReverseV2)

namespace tflite {

class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() {}
};

template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
#define TFLM_STUB_ADD(name) \
  TfLiteStatus Add##name() { return Register(#name); }
  TFLM_STUB_OPS(TFLM_STUB_ADD)
#undef TFLM_STUB_ADD

  unsigned int GetRegistrationLength() const { return count_; }
  const char* RegisteredName(unsigned int i) const { return names_[i]; }

 private:
  TfLiteStatus Register(const char* name) {
    for (unsigned int i = 0; i < count_; ++i) {
      if (names_[i] == name) return kTfLiteError;  // same op twice: the real one refuses too
    }
    if (count_ >= tOpCount) return kTfLiteError;
    names_[count_++] = name;
    return kTfLiteOk;
  }
  const char* names_[tOpCount] = {};
  unsigned int count_ = 0;
};

}  // namespace tflite

#endif  // TFLM_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
