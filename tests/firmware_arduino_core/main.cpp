// Stand-in for an Arduino core's main(): setup() once, then loop() -- a fixed number of times, so
// the image ends under QEMU (TINYFLEET_TEST_LOOPS times, default 8).
#include <Arduino.h>

#ifndef TINYFLEET_TEST_LOOPS
#define TINYFLEET_TEST_LOOPS 8
#endif

int main() {
  setup();
  for (int i = 0; i < TINYFLEET_TEST_LOOPS; ++i) loop();
  return 0;
}
