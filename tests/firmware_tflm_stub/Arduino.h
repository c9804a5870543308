// Test stub of the Arduino core header (the sketch only needs it to exist).
#ifndef ARDUINO_STUB_H_
#define ARDUINO_STUB_H_
#endif
