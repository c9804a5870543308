// Test stub of tensorflow/lite/c/common.h: only what the generated code touches.
#ifndef TFLM_STUB_COMMON_H_
#define TFLM_STUB_COMMON_H_

#include <stddef.h>
#include <stdint.h>

typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

typedef union TfLitePtrUnion {
  int8_t* int8;
  float* f;
} TfLitePtrUnion;

typedef struct TfLiteTensor {
  TfLitePtrUnion data;
  size_t bytes;
} TfLiteTensor;

#endif  // TFLM_STUB_COMMON_H_
