//! Media plane: G.711 codecs, RTP packetisation, paced playout, receive statistics, prompts.
