// Test stub of tflite-micro's system_setup.h.
#ifndef TFLM_STUB_SYSTEM_SETUP_H_
#define TFLM_STUB_SYSTEM_SETUP_H_

namespace tflite {
void InitializeTarget();
}  // namespace tflite

#endif  // TFLM_STUB_SYSTEM_SETUP_H_
