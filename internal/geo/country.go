package geo

// countries lists every ISO 3166-1 alpha-2 code in use, plus XK (Kosovo,
// user-assigned but returned by GeoNames-based databases), each followed by
// its continent code as MaxMind and GeoNames assign it. Entries are four
// bytes, sorted, so a lookup is a binary search in a constant: no map to
// build, nothing mutable at package level.
//
// Transcontinental countries follow GeoNames (RU in EU; TR, GE, AM, AZ, KZ in
// AS; EG in AF), which is what a City database returns for them too, so a
// continent derived here agrees with a looked-up one.
const countries = "" +
	"ADEU" + "AEAS" + "AFAS" + "AGNA" + "AINA" + "ALEU" + "AMAS" + "AOAF" +
	"AQAN" + "ARSA" + "ASOC" + "ATEU" + "AUOC" + "AWNA" + "AXEU" + "AZAS" +
	"BAEU" + "BBNA" + "BDAS" + "BEEU" + "BFAF" + "BGEU" + "BHAS" + "BIAF" +
	"BJAF" + "BLNA" + "BMNA" + "BNAS" + "BOSA" + "BQNA" + "BRSA" + "BSNA" +
	"BTAS" + "BVAN" + "BWAF" + "BYEU" + "BZNA" +
	"CANA" + "CCAS" + "CDAF" + "CFAF" + "CGAF" + "CHEU" + "CIAF" + "CKOC" +
	"CLSA" + "CMAF" + "CNAS" + "COSA" + "CRNA" + "CUNA" + "CVAF" + "CWNA" +
	"CXAS" + "CYEU" + "CZEU" +
	"DEEU" + "DJAF" + "DKEU" + "DMNA" + "DONA" + "DZAF" +
	"ECSA" + "EEEU" + "EGAF" + "EHAF" + "ERAF" + "ESEU" + "ETAF" +
	"FIEU" + "FJOC" + "FKSA" + "FMOC" + "FOEU" + "FREU" +
	"GAAF" + "GBEU" + "GDNA" + "GEAS" + "GFSA" + "GGEU" + "GHAF" + "GIEU" +
	"GLNA" + "GMAF" + "GNAF" + "GPNA" + "GQAF" + "GREU" + "GSAN" + "GTNA" +
	"GUOC" + "GWAF" + "GYSA" +
	"HKAS" + "HMAN" + "HNNA" + "HREU" + "HTNA" + "HUEU" +
	"IDAS" + "IEEU" + "ILAS" + "IMEU" + "INAS" + "IOAS" + "IQAS" + "IRAS" +
	"ISEU" + "ITEU" +
	"JEEU" + "JMNA" + "JOAS" + "JPAS" +
	"KEAF" + "KGAS" + "KHAS" + "KIOC" + "KMAF" + "KNNA" + "KPAS" + "KRAS" +
	"KWAS" + "KYNA" + "KZAS" +
	"LAAS" + "LBAS" + "LCNA" + "LIEU" + "LKAS" + "LRAF" + "LSAF" + "LTEU" +
	"LUEU" + "LVEU" + "LYAF" +
	"MAAF" + "MCEU" + "MDEU" + "MEEU" + "MFNA" + "MGAF" + "MHOC" + "MKEU" +
	"MLAF" + "MMAS" + "MNAS" + "MOAS" + "MPOC" + "MQNA" + "MRAF" + "MSNA" +
	"MTEU" + "MUAF" + "MVAS" + "MWAF" + "MXNA" + "MYAS" + "MZAF" +
	"NAAF" + "NCOC" + "NEAF" + "NFOC" + "NGAF" + "NINA" + "NLEU" + "NOEU" +
	"NPAS" + "NROC" + "NUOC" + "NZOC" +
	"OMAS" +
	"PANA" + "PESA" + "PFOC" + "PGOC" + "PHAS" + "PKAS" + "PLEU" + "PMNA" +
	"PNOC" + "PRNA" + "PSAS" + "PTEU" + "PWOC" + "PYSA" +
	"QAAS" +
	"REAF" + "ROEU" + "RSEU" + "RUEU" + "RWAF" +
	"SAAS" + "SBOC" + "SCAF" + "SDAF" + "SEEU" + "SGAS" + "SHAF" + "SIEU" +
	"SJEU" + "SKEU" + "SLAF" + "SMEU" + "SNAF" + "SOAF" + "SRSA" + "SSAF" +
	"STAF" + "SVNA" + "SXNA" + "SYAS" + "SZAF" +
	"TCNA" + "TDAF" + "TFAN" + "TGAF" + "THAS" + "TJAS" + "TKOC" + "TLOC" +
	"TMAS" + "TNAF" + "TOOC" + "TRAS" + "TTNA" + "TVOC" + "TWAS" + "TZAF" +
	"UAEU" + "UGAF" + "UMOC" + "USNA" + "UYSA" + "UZAS" +
	"VAEU" + "VCNA" + "VESA" + "VGNA" + "VINA" + "VNAS" + "VUOC" +
	"WFOC" + "WSOC" +
	"XKEU" +
	"YEAS" + "YTAF" +
	"ZAAF" + "ZMAF" + "ZWAF"

// ContinentOf returns the continent code of an ISO 3166-1 alpha-2 country
// code (upper case), or "" if the code is not an assigned country.
func ContinentOf(country string) string {
	if len(country) != 2 {
		return ""
	}
	lo, hi := 0, len(countries)/4
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		e := countries[4*mid : 4*mid+2]
		switch {
		case e == country:
			return countries[4*mid+2 : 4*mid+4]
		case e < country:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return ""
}

// validContinent reports whether c is one of the seven continent codes
// MaxMind databases use.
func validContinent(c string) bool {
	switch c {
	case "AF", "AN", "AS", "EU", "NA", "OC", "SA":
		return true
	}
	return false
}
