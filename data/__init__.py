"""The default policy and the bundled sample exports, installed as ``cleansing.data``."""
