// Test stub of the flatbuffer schema header: GetModel() and the schema version only.
#ifndef TFLM_STUB_SCHEMA_GENERATED_H_
#define TFLM_STUB_SCHEMA_GENERATED_H_

#include <stdint.h>

#define TFLITE_SCHEMA_VERSION (3)

namespace tflite {

struct Model {
  uint32_t version() const;
};

const Model* GetModel(const void* buf);

}  // namespace tflite

#endif  // TFLM_STUB_SCHEMA_GENERATED_H_
