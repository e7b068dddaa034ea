"""The device daemon: audio, wake word, VAD, STT, intent, TTS, hub link, offline queue."""
