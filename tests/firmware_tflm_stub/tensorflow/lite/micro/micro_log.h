// Test stub of tflite-micro's micro_log.h.
#ifndef TFLM_STUB_MICRO_LOG_H_
#define TFLM_STUB_MICRO_LOG_H_

void MicroPrintf(const char* format, ...) __attribute__((format(printf, 1, 2)));

#endif  // TFLM_STUB_MICRO_LOG_H_
