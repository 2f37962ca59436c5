# dicom_gen.sh: the CT series generator shared by t_85_dicom.sh and
# t_86_orthanc.sh (sourced, not run: run-tests.sh only runs t_*.sh).

uid_root() { python3 -c 'import uuid; print("2.25." + str(uuid.uuid4().int))'; }

# gen_series DIR N SEED PATIENT-ID PATIENT-NAME ACCESSION: a CT series of N
# slices in DIR/CT_NNNN.dcm; prints its Study Instance UID
gen_series() {
	local dir=$1 n=$2 seed=$3 pid=$4 pname=$5 acc=$6 study series frame i
	study=$(uid_root)
	series=$study.2
	frame=$study.3
	mkdir -p "$dir" "$dir.px" || return 1
	python3 "$TOOL" pixels "$dir.px" "$n" "$seed" || return 1
	cat >"$dir.px/template.dump" <<-EOF
	(0002,0010) UI [1.2.840.10008.1.2.1]
	(0008,0005) CS [ISO_IR 100]
	(0008,0008) CS [ORIGINAL\\PRIMARY\\AXIAL]
	(0008,0016) UI [1.2.840.10008.5.1.4.1.1.2]
	(0008,0018) UI [$study.4.0]
	(0008,0020) DA [20240312]
	(0008,0021) DA [20240312]
	(0008,0022) DA [20240312]
	(0008,0023) DA [20240312]
	(0008,0030) TM [101502]
	(0008,0031) TM [101744]
	(0008,0033) TM [101745]
	(0008,0050) SH [$acc]
	(0008,0060) CS [CT]
	(0008,0070) LO [MEDVAULT TEST SCANNER]
	(0008,0080) LO [HOPITAL DE TEST]
	(0008,0090) PN [MARTIN^PAUL^^DR]
	(0008,1030) LO [CT THORAX ABDOMEN PELVIS]
	(0008,103e) LO [AXIAL 2.5MM STD]
	(0010,0010) PN [$pname]
	(0010,0020) LO [$pid]
	(0010,0030) DA [19580704]
	(0010,0040) CS [F]
	(0010,1010) AS [065Y]
	(0018,0015) CS [CHEST]
	(0018,0050) DS [2.5]
	(0018,0060) DS [120]
	(0018,1150) IS [1000]
	(0018,1151) IS [250]
	(0018,5100) CS [FFS]
	(0020,000d) UI [$study]
	(0020,000e) UI [$series]
	(0020,0010) SH [$seed]
	(0020,0011) IS [2]
	(0020,0012) IS [1]
	(0020,0013) IS [0]
	(0020,0032) DS [-250\\-250\\0]
	(0020,0037) DS [1\\0\\0\\0\\1\\0]
	(0020,0052) UI [$frame]
	(0020,1041) DS [0]
	(0028,0002) US 1
	(0028,0004) CS [MONOCHROME2]
	(0028,0010) US 512
	(0028,0011) US 512
	(0028,0030) DS [0.9765625\\0.9765625]
	(0028,0100) US 16
	(0028,0101) US 12
	(0028,0102) US 11
	(0028,0103) US 0
	(0028,1050) DS [40]
	(0028,1051) DS [400]
	(0028,1052) DS [-1024]
	(0028,1053) DS [1]
	(7fe0,0010) OW =$dir.px/px_0000.raw
	EOF
	dump2dcm -q "$dir.px/template.dump" "$dir.px/template.dcm" || return 1
	for ((i = 0; i < n; i++)); do
		printf '%s\n' "$i"
	done | xargs -P 2 -I{} sh -c '
		i=$1 dir=$2 study=$3
		f=$(printf "%s/CT_%04d.dcm" "$dir" "$i")
		z=$(awk -v i="$i" "BEGIN { printf \"%.2f\", -2.5 * i }")
		cp "$dir.px/template.dcm" "$f" &&
		dcmodify -q -nb \
			-m "(0008,0018)=$study.4.$((i + 1))" \
			-m "(0020,0013)=$((i + 1))" \
			-m "(0020,0032)=-250\\-250\\$z" \
			-m "(0020,1041)=$z" \
			-mf "(7fe0,0010)=$(printf "%s.px/px_%04d.raw" "$dir" "$i")" "$f"
	' _ {} "$dir" "$study" >&2 || return 1
	rm -rf "$dir.px"
	echo "$study"
}
