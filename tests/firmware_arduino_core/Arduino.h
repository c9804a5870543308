// Stand-in for an Arduino core's Arduino.h in the Arduino build test: the exported sketch needs
// nothing from it but its existence (it prints through TFLM's MicroPrintf).
#ifndef TINYFLEET_TEST_ARDUINO_H_
#define TINYFLEET_TEST_ARDUINO_H_
#ifdef __cplusplus
extern "C++" {
void setup();
void loop();
}
#endif
#endif  // TINYFLEET_TEST_ARDUINO_H_
