"""Fake of upstream finetuning/dataset.py: TTSDataset's checks on each JSONL line."""
import soundfile as sf


class TTSDataset:
    def __init__(self, data_list, processor=None, config=None, lag_num=-1):
        self.data_list = data_list
        for line in data_list:
            if "audio_codes" not in line:
                raise KeyError("audio_codes")  # upstream indexes it: the JSONL must come from prepare_data.py
            for key in ("text", "ref_audio"):
                line[key]
            sr = sf.info(line["ref_audio"]).samplerate
            assert sr == 24000, "Only support 24kHz audio"

    def __len__(self):
        return len(self.data_list)
